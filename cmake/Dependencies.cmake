# Finds every third-party dependency. Each one comes from a Debian package; when one is missing,
# configuration stops with the name of the package to install (scripts/install-deps.sh installs all).
find_package(PkgConfig QUIET)
if(NOT PkgConfig_FOUND)
  message(FATAL_ERROR "pkg-config not found: install the Debian package 'pkg-config' (apt-get install pkg-config)")
endif()

function(mcr_missing what package)
  message(FATAL_ERROR "${what} not found: install the Debian package '${package}' "
                      "(apt-get install ${package}, or run scripts/install-deps.sh)")
endfunction()

function(mcr_pkg_config target module package)
  pkg_check_modules(${target} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${target}_FOUND)
    mcr_missing("${module}" "${package}")
  endif()
endfunction()

function(mcr_find_config name package)
  find_package(${name} CONFIG QUIET)
  if(NOT ${name}_FOUND)
    mcr_missing("${name}" "${package}")
  endif()
endfunction()

set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)

mcr_pkg_config(LIBURING liburing liburing-dev)      # PkgConfig::LIBURING
mcr_pkg_config(LIBNUMA numa libnuma-dev)            # PkgConfig::LIBNUMA
mcr_pkg_config(LIBMNL libmnl libmnl-dev)            # PkgConfig::LIBMNL
mcr_find_config(absl libabsl-dev)                   # absl::flat_hash_map, absl::status, ...
mcr_find_config(prometheus-cpp prometheus-cpp-dev)  # prometheus-cpp::core, prometheus-cpp::pull
mcr_find_config(nlohmann_json nlohmann-json3-dev)   # nlohmann_json::nlohmann_json
mcr_find_config(CLI11 libcli11-dev)                 # CLI11::CLI11
if(MCR_BUILD_TESTS)
  find_package(GTest CONFIG QUIET)
  if(NOT GTest_FOUND)
    mcr_missing("GoogleTest" "libgtest-dev")
  endif()
  if(NOT TARGET GTest::gmock)
    mcr_missing("GoogleMock" "libgmock-dev")
  endif()
endif()
if(MCR_BUILD_BENCH)
  mcr_find_config(benchmark libbenchmark-dev)       # benchmark::benchmark
endif()
