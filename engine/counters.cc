#include "engine/counters.h"

#include <cerrno>

namespace mcr::engine {

const char* EgressErrorName(EgressError e) noexcept {
  switch (e) {
    case EgressError::kWouldBlock: return "would_block";
    case EgressError::kNoBuffers: return "no_buffers";
    case EgressError::kNetworkDown: return "network_down";
    case EgressError::kRefused: return "refused";
    case EgressError::kTooBig: return "too_big";
    case EgressError::kNoInterface: return "no_interface";
    case EgressError::kOther: return "other";
    case EgressError::kCount: break;
  }
  return "unknown";
}

EgressError EgressErrorFromErrno(int err) noexcept {
  switch (err) {
    case EAGAIN: return EgressError::kWouldBlock;
    case ENOBUFS: return EgressError::kNoBuffers;
    case ENETDOWN:
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENODEV:
    case ENXIO: return EgressError::kNetworkDown;
    case ECONNREFUSED: return EgressError::kRefused;
    case EMSGSIZE: return EgressError::kTooBig;
    default: return EgressError::kOther;
  }
}

}  // namespace mcr::engine
