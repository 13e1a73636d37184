// HOT PATH: no allocation, no exceptions, no syscalls.
#include "bench/mcrgen/payload.h"

#include <bit>

#include "bench/mcrgen/bytes.h"
#include "bench/mcrgen/rtp.h"

namespace mcr::gen {
namespace {

constexpr size_t kOffStream = 4;
constexpr size_t kOffSeq = 8;
constexpr size_t kOffTime = 16;
constexpr size_t kOffLength = 24;
constexpr size_t kOffChecksum = 28;
static_assert(kOffChecksum + 4 == kPayloadHeaderSize);

// xxHash64's primes: odd, with well-spread bits, so multiplication mixes every input bit upward.
constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kPrime3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kPrime4 = 0x85EBCA77C2B2AE63ULL;

// splitmix64's finaliser: a bijection with full avalanche. Bijective matters: two different
// inputs never give the same seed, so a changed header field always changes the checksum seed.
inline uint64_t Mix(uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return x;
}

// xxHash64's round. For a fixed word it is a bijection of acc, so a difference in any earlier
// word survives every later round; the rotation keeps two equal bit flips from cancelling.
inline uint64_t Round(uint64_t acc, uint64_t word) noexcept {
  acc += word * kPrime2;
  acc = std::rotl(acc, 31);
  return acc * kPrime1;
}

inline uint64_t PatternSeed(uint32_t stream, uint64_t seq) noexcept {
  return Mix(seq + Mix(stream + kPrime4));
}

inline uint64_t ChecksumSeed(uint32_t stream, uint64_t seq, int64_t time_ns,
                             uint32_t length) noexcept {
  uint64_t s = Mix((uint64_t{stream} << 32) | length);
  s = Mix(s ^ seq);
  return Mix(s ^ static_cast<uint64_t>(time_ns));
}

// Four independent lanes so the multiplies of consecutive words overlap in the pipeline.
struct Lanes {
  explicit Lanes(uint64_t seed) noexcept
      : v0(seed + kPrime1 + kPrime2), v1(seed + kPrime2), v2(seed), v3(seed - kPrime1) {}
  uint32_t Finish() const noexcept {
    const uint64_t h =
        Mix(std::rotl(v0, 1) + std::rotl(v1, 7) + std::rotl(v2, 12) + std::rotl(v3, 18));
    return static_cast<uint32_t>(h ^ (h >> 32));
  }
  uint64_t v0, v1, v2, v3;
};

inline uint64_t TailMask(size_t tail_bytes) noexcept {
  return (uint64_t{1} << (8 * tail_bytes)) - 1;  // tail_bytes is 1..7
}

// Writes the pattern of (stream, seq) to p[0, len) and returns the checksum seeded with `seed`.
uint32_t WritePattern(uint32_t stream, uint64_t seq, uint64_t seed, uint8_t* p,
                      size_t len) noexcept {
  const uint64_t base = PatternSeed(stream, seq);
  const size_t words = len / 8;
  Lanes l(seed);
  uint64_t step = 0;  // index * kPrime3, kept incrementally
  size_t i = 0;
  for (; i + 4 <= words; i += 4) {
    const uint64_t w0 = base ^ step;
    const uint64_t w1 = base ^ (step + kPrime3);
    const uint64_t w2 = base ^ (step + 2 * kPrime3);
    const uint64_t w3 = base ^ (step + 3 * kPrime3);
    step += 4 * kPrime3;
    StoreLe64(p + 8 * i, w0);
    StoreLe64(p + 8 * i + 8, w1);
    StoreLe64(p + 8 * i + 16, w2);
    StoreLe64(p + 8 * i + 24, w3);
    l.v0 = Round(l.v0, w0);
    l.v1 = Round(l.v1, w1);
    l.v2 = Round(l.v2, w2);
    l.v3 = Round(l.v3, w3);
  }
  for (; i < words; ++i, step += kPrime3) {
    const uint64_t w = base ^ step;
    StoreLe64(p + 8 * i, w);
    l.v0 = Round(l.v0, w);
  }
  if (const size_t tail = len % 8; tail != 0) {
    const uint64_t w = (base ^ step) & TailMask(tail);
    uint8_t bytes[8];
    StoreLe64(bytes, w);
    std::memcpy(p + 8 * words, bytes, tail);
    l.v1 = Round(l.v1, w);
  }
  return l.Finish();
}

// Mirror of WritePattern: returns the checksum of p[0, len) and sets *mismatch when any byte
// differs from the pattern. Branch-free inner loop: differences are OR-ed, not tested per word.
uint32_t CheckPattern(uint32_t stream, uint64_t seq, uint64_t seed, const uint8_t* p, size_t len,
                      bool* mismatch) noexcept {
  const uint64_t base = PatternSeed(stream, seq);
  const size_t words = len / 8;
  Lanes l(seed);
  uint64_t step = 0;
  uint64_t diff = 0;
  size_t i = 0;
  for (; i + 4 <= words; i += 4) {
    const uint64_t w0 = LoadLe64(p + 8 * i);
    const uint64_t w1 = LoadLe64(p + 8 * i + 8);
    const uint64_t w2 = LoadLe64(p + 8 * i + 16);
    const uint64_t w3 = LoadLe64(p + 8 * i + 24);
    diff |= (w0 ^ base ^ step) | (w1 ^ base ^ (step + kPrime3)) |
            (w2 ^ base ^ (step + 2 * kPrime3)) | (w3 ^ base ^ (step + 3 * kPrime3));
    step += 4 * kPrime3;
    l.v0 = Round(l.v0, w0);
    l.v1 = Round(l.v1, w1);
    l.v2 = Round(l.v2, w2);
    l.v3 = Round(l.v3, w3);
  }
  for (; i < words; ++i, step += kPrime3) {
    const uint64_t w = LoadLe64(p + 8 * i);
    diff |= w ^ base ^ step;
    l.v0 = Round(l.v0, w);
  }
  if (const size_t tail = len % 8; tail != 0) {
    uint8_t bytes[8] = {};
    std::memcpy(bytes, p + 8 * words, tail);
    const uint64_t w = LoadLe64(bytes);
    diff |= w ^ ((base ^ step) & TailMask(tail));
    l.v1 = Round(l.v1, w);
  }
  *mismatch = diff != 0;
  return l.Finish();
}

void EncodePayload(const PayloadHeader& h, uint8_t* buf, size_t len) noexcept {
  const auto length = static_cast<uint32_t>(len);
  StoreBe32(buf, kPayloadMagic);
  StoreBe32(buf + kOffStream, h.stream);
  StoreBe64(buf + kOffSeq, h.seq);
  StoreBe64(buf + kOffTime, static_cast<uint64_t>(h.send_time_ns));
  StoreBe32(buf + kOffLength, length);
  const uint32_t sum =
      WritePattern(h.stream, h.seq, ChecksumSeed(h.stream, h.seq, h.send_time_ns, length),
                   buf + kPayloadHeaderSize, len - kPayloadHeaderSize);
  StoreBe32(buf + kOffChecksum, sum);
}

PayloadStatus DecodePayload(const uint8_t* buf, size_t len, PayloadHeader* out) noexcept {
  if (len < kPayloadHeaderSize) return PayloadStatus::kShort;
  if (LoadBe32(buf) != kPayloadMagic) return PayloadStatus::kBadMagic;
  const uint32_t length = LoadBe32(buf + kOffLength);
  if (length != len) return PayloadStatus::kBadLength;
  PayloadHeader h;
  h.stream = LoadBe32(buf + kOffStream);
  h.seq = LoadBe64(buf + kOffSeq);
  h.send_time_ns = static_cast<int64_t>(LoadBe64(buf + kOffTime));
  bool mismatch = false;
  const uint32_t sum =
      CheckPattern(h.stream, h.seq, ChecksumSeed(h.stream, h.seq, h.send_time_ns, length),
                   buf + kPayloadHeaderSize, len - kPayloadHeaderSize, &mismatch);
  if (mismatch) return PayloadStatus::kBadPattern;
  if (sum != LoadBe32(buf + kOffChecksum)) return PayloadStatus::kBadChecksum;
  *out = h;
  return PayloadStatus::kOk;
}

}  // namespace

const char* PayloadStatusName(PayloadStatus s) noexcept {
  switch (s) {
    case PayloadStatus::kOk:
      return "ok";
    case PayloadStatus::kShort:
      return "short";
    case PayloadStatus::kBadMagic:
      return "bad_magic";
    case PayloadStatus::kBadLength:
      return "bad_length";
    case PayloadStatus::kBadPattern:
      return "bad_pattern";
    case PayloadStatus::kBadChecksum:
      return "bad_checksum";
    case PayloadStatus::kBadRtp:
      return "bad_rtp";
    case PayloadStatus::kCount:
      break;
  }
  return "unknown";
}

void EncodeDatagram(const PayloadHeader& h, bool rtp, uint8_t* buf, size_t len) noexcept {
  if (rtp) {
    RtpHeader r;
    r.seq = static_cast<uint16_t>(h.seq);
    r.timestamp = RtpTimestamp90k(h.send_time_ns);
    r.ssrc = h.stream;
    EncodeRtpHeader(r, buf);
    buf += kRtpHeaderSize;
    len -= kRtpHeaderSize;
  }
  EncodePayload(h, buf, len);
}

PayloadStatus ParseDatagram(const uint8_t* buf, size_t len, ParsedDatagram* out) noexcept {
  if (len >= 4 && LoadBe32(buf) == kPayloadMagic) {
    out->rtp = false;
    return DecodePayload(buf, len, &out->header);
  }
  if (len >= kRtpHeaderSize + 4 && LoadBe32(buf + kRtpHeaderSize) == kPayloadMagic) {
    out->rtp = true;
    PayloadHeader h;
    const PayloadStatus st = DecodePayload(buf + kRtpHeaderSize, len - kRtpHeaderSize, &h);
    if (st != PayloadStatus::kOk) return st;
    RtpHeader r;
    if (!DecodeRtpHeader(buf, len, &r) || r.payload_type != kRtpPayloadType || r.marker ||
        r.seq != static_cast<uint16_t>(h.seq) || r.ssrc != h.stream ||
        r.timestamp != RtpTimestamp90k(h.send_time_ns)) {
      return PayloadStatus::kBadRtp;
    }
    out->header = h;
    return PayloadStatus::kOk;
  }
  return len < kPayloadHeaderSize ? PayloadStatus::kShort : PayloadStatus::kBadMagic;
}

uint64_t PatternWord(uint32_t stream, uint64_t seq, uint64_t index) noexcept {
  return PatternSeed(stream, seq) ^ (index * kPrime3);
}

}  // namespace mcr::gen
