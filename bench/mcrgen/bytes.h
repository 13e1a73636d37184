#pragma once
// Unaligned big- and little-endian loads and stores for wire formats. memcpy compiles to a single
// (unaligned) move on x86 and arm64, and keeps the compiler's aliasing rules intact.
// Pure functions: any thread.

#include <bit>
#include <cstdint>
#include <cstring>

namespace mcr::gen {

inline uint16_t LoadBe16(const uint8_t* p) noexcept {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return std::endian::native == std::endian::little ? __builtin_bswap16(v) : v;
}
inline uint32_t LoadBe32(const uint8_t* p) noexcept {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return std::endian::native == std::endian::little ? __builtin_bswap32(v) : v;
}
inline uint64_t LoadBe64(const uint8_t* p) noexcept {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return std::endian::native == std::endian::little ? __builtin_bswap64(v) : v;
}
inline uint64_t LoadLe64(const uint8_t* p) noexcept {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return std::endian::native == std::endian::little ? v : __builtin_bswap64(v);
}
inline void StoreBe16(uint8_t* p, uint16_t v) noexcept {
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap16(v);
  std::memcpy(p, &v, sizeof(v));
}
inline void StoreBe32(uint8_t* p, uint32_t v) noexcept {
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap32(v);
  std::memcpy(p, &v, sizeof(v));
}
inline void StoreBe64(uint8_t* p, uint64_t v) noexcept {
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
  std::memcpy(p, &v, sizeof(v));
}
inline void StoreLe64(uint8_t* p, uint64_t v) noexcept {
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  std::memcpy(p, &v, sizeof(v));
}

}  // namespace mcr::gen
