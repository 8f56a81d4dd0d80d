// 3x3 convolutions (stride 1, 'SAME' zero padding, NHWC input, HWIO kernel, float32) as XLA FFI
// custom calls for the CPU, for the two cases where XLA:CPU is slow:
//
//   BinjaxConv3x3Wgrad  the kernel gradient. XLA runs it as a generic convolution at ~35
//       GFLOP/s per core, after transposing both operands; this runs at 150-210.
//         x [N,H,W,C], g [N,H,W,O] -> dk [3,3,C,O],  O % 16 == 0
//         dk[ky,kx,c,o] = sum_{n,y,x} x[n, y+ky-1, x+kx-1, c] * g[n,y,x,o]
//   BinjaxConv3x3To16   the forward pass to 16 channels (a U-Net's full-resolution level; also
//       the input gradient of a conv from 16 channels, a forward pass of the flipped kernel).
//       XLA (XNNPACK) runs it at 5-90 GFLOP/s per core; this at 100-170. XLA's own forward
//       pass to 32 or more channels runs at 175-199 and is kept.
//         x [N,H,W,C], k [3,3,C,16] -> y [N,H,W,16]
//         y[n,y,x,o] = sum_{ky,kx,c} x[n, y+ky-1, x+kx-1, c] * k[ky,kx,c,o]
//
// Both are register-blocked outer products, blocked for AVX-512 or, when compiled without it,
// AVX2 (the figures above are AVX-512's; an AVX2 build, measured with -march=haswell on the same
// machine, made the U-Net step 0.87 s against XLA's 1.22 s). Work is shared out over XLA's
// intra-op thread pool.
// Under a mesh each device runs them on its own images (see __init__.py), and an all-reduce adds
// the devices' kernel gradients, as XLA does for its own convolution.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

// One vector register of floats: 16 with AVX-512 (32 registers), else 8 (AVX2: 16 registers).
// aligned(4) makes loads and stores through it unaligned-safe. The register blocking below
// keeps about 12-16 accumulators, whatever the width.
#if defined(__AVX512F__)
#define BINJAX_LANES 16
constexpr int kWgradAccumulators = 16;
constexpr int kConvPixels = 12;  // measured best of 8-24
#else
#define BINJAX_LANES 8
constexpr int kWgradAccumulators = 8;
constexpr int kConvPixels = 6;
#endif
constexpr int kLanes = BINJAX_LANES;
typedef float vecf __attribute__((vector_size(4 * BINJAX_LANES), aligned(4)));
constexpr int kVectorsPer16 = 16 / kLanes;

// Runs fn(item, worker) for every item in [0, items): on the caller (worker 0) and on up to
// workers - 1 pool tasks, each taking items from a shared counter. The caller waits only for
// items already taken, so a task the pool starts late (or never) cannot stall it; the counter is
// shared so that such a task still finds it alive (and no item left, so fn is never called).
template <typename Fn>
static void parallel_for(ffi::ThreadPool& pool, int64_t items, int64_t workers, Fn fn) {
  struct State {
    std::atomic<int64_t> next{0};
    int64_t done = 0;
    std::mutex mutex;
    std::condition_variable all_done;
  };
  auto state = std::make_shared<State>();
  auto work = [state, items, fn](int64_t worker) {
    for (int64_t i; (i = state->next.fetch_add(1)) < items;) {
      fn(i, worker);
      std::lock_guard<std::mutex> lock(state->mutex);
      if (++state->done == items) state->all_done.notify_all();
    }
  };
  for (int64_t w = 1; w < workers; ++w) pool.Schedule([work, w] { work(w); });
  work(0);
  std::unique_lock<std::mutex> lock(state->mutex);
  state->all_done.wait(lock, [&] { return state->done == items; });
}

//===------------------------------------------------------------------------------------===//
// Forward, 16 output channels
//===------------------------------------------------------------------------------------===//

// Output pixels [px0, px0 + PX) of one row (16 channels each), from the three
// zero-padded input rows above, at and below it (nullptr: outside the image). With the input's
// channel count CT known at compile time the PX pixels' loads are constant offsets, which made
// the loop 1.3-2x faster than with C at run time (CT = 0).
template <int PX, int CT>
static inline void conv16_block(const float* const rows[3], const float* k, float* out, int64_t px0,
                                int64_t c_runtime) {
  const int64_t C = CT > 0 ? CT : c_runtime;
  vecf acc[PX][kVectorsPer16];
  for (int p = 0; p < PX; ++p)
    for (int j = 0; j < kVectorsPer16; ++j) acc[p][j] = vecf{};
  for (int ky = 0; ky < 3; ++ky) {
    if (rows[ky] == nullptr) continue;
    for (int kx = 0; kx < 3; ++kx) {
      const float* xp = rows[ky] + (px0 + kx) * C;  // padded row: pixel x sits at x + 1
      const float* kp = k + (ky * 3 + kx) * C * 16;
      for (int64_t c = 0; c < C; ++c) {
        vecf kv[kVectorsPer16];
        for (int j = 0; j < kVectorsPer16; ++j) kv[j] = *(const vecf*)(kp + 16 * c + kLanes * j);
        for (int p = 0; p < PX; ++p) {
          const float xv = xp[p * C + c];
          for (int j = 0; j < kVectorsPer16; ++j) acc[p][j] += xv * kv[j];
        }
      }
    }
  }
  for (int p = 0; p < PX; ++p)
    for (int j = 0; j < kVectorsPer16; ++j) *(vecf*)(out + (px0 + p) * 16 + kLanes * j) = acc[p][j];
}

template <int CT>
static void conv16_row(const float* const rows[3], const float* k, float* out, int64_t W, int64_t C) {
  int64_t px = 0;
  for (; px + kConvPixels <= W; px += kConvPixels) conv16_block<kConvPixels, CT>(rows, k, out, px, C);
  for (; px < W; ++px) conv16_block<1, CT>(rows, k, out, px, C);
}

static void conv16_row_any(const float* const rows[3], const float* k, float* out, int64_t W, int64_t C) {
  switch (C) {  // the channel counts that meet 16 output channels in binjax's models
    case 1: return conv16_row<1>(rows, k, out, W, C);
    case 3: return conv16_row<3>(rows, k, out, W, C);
    case 16: return conv16_row<16>(rows, k, out, W, C);
    case 32: return conv16_row<32>(rows, k, out, W, C);
    default: return conv16_row<0>(rows, k, out, W, C);
  }
}

static ffi::Error Conv3x3To16Impl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> k,
                                  ffi::ResultBuffer<ffi::F32> y) {
  const auto xd = x.dimensions(), kd = k.dimensions();
  if (xd.size() != 4 || kd.size() != 4 || kd[0] != 3 || kd[1] != 3 || kd[2] != xd[3] || kd[3] != 16)
    return ffi::Error::InvalidArgument("conv3x3_to16: x [N,H,W,C] and k [3,3,C,16] expected");
  const int64_t N = xd[0], H = xd[1], W = xd[2], C = xd[3];
  const float* x_data = x.typed_data();
  const float* k_data = k.typed_data();
  float* y_data = y->typed_data();
  // Items: bands of rows of one image. Each keeps zero-padded copies of the 3 input rows it
  // reads in a ring, so that the inner loops never test for the image border.
  constexpr int64_t kBandRows = 8;
  const int64_t bands = (H + kBandRows - 1) / kBandRows;
  const int64_t row_size = (W + 2) * C;
  const int64_t items = N * bands;
  parallel_for(pool, items, std::min<int64_t>(pool.num_threads(), items), [=](int64_t item, int64_t) {
    const int64_t n = item / bands, y_begin = (item % bands) * kBandRows;
    const int64_t y_end = std::min(H, y_begin + kBandRows);
    std::vector<float> ring(3 * row_size, 0.0f);
    int64_t ring_rows[3] = {-1, -1, -1};
    auto padded_row = [&](int64_t r) -> const float* {
      if (r < 0 || r >= H) return nullptr;
      float* slot = ring.data() + (r % 3) * row_size;
      if (ring_rows[r % 3] != r) {
        std::memcpy(slot + C, x_data + (n * H + r) * W * C, sizeof(float) * W * C);
        ring_rows[r % 3] = r;
      }
      return slot;
    };
    for (int64_t r = y_begin; r < y_end; ++r) {
      const float* rows[3] = {padded_row(r - 1), padded_row(r), padded_row(r + 1)};
      conv16_row_any(rows, k_data, y_data + (n * H + r) * W * 16, W, C);
    }
  });
  return ffi::Error::Success();
}

//===------------------------------------------------------------------------------------===//
// Kernel gradient
//===------------------------------------------------------------------------------------===//

// For each image row, each of the 9 taps, and each block of CB input x NV vectors of output channels:
// CB*NV accumulators stay in registers across the row, each pixel adds one outer product.
template <int CB, int NV>
static void wgrad_image(const float* x, const float* g, float* dw, int64_t H, int64_t W, int64_t C,
                        int64_t O) {
  for (int64_t y = 0; y < H; ++y) {
    const float* g_row = g + y * W * O;
    for (int ky = 0; ky < 3; ++ky) {
      const int64_t y_in = y + ky - 1;
      if (y_in < 0 || y_in >= H) continue;
      const float* x_row = x + y_in * W * C;
      for (int kx = 0; kx < 3; ++kx) {
        // Output columns whose input column x + kx - 1 lies inside the image.
        const int64_t x_begin = std::max<int64_t>(0, 1 - kx);
        const int64_t x_end = std::min<int64_t>(W, W + 1 - kx);
        float* tap = dw + (ky * 3 + kx) * C * O;
        for (int64_t c0 = 0; c0 < C; c0 += CB) {
          for (int64_t o0 = 0; o0 < O; o0 += kLanes * NV) {
            vecf acc[CB][NV];
            for (int i = 0; i < CB; ++i)
              for (int j = 0; j < NV; ++j) acc[i][j] = *(const vecf*)(tap + (c0 + i) * O + o0 + kLanes * j);
            const float* xp = x_row + (x_begin + kx - 1) * C + c0;
            const float* gp = g_row + x_begin * O + o0;
            for (int64_t px = x_begin; px < x_end; ++px, xp += C, gp += O) {
              vecf gv[NV];
              for (int j = 0; j < NV; ++j) gv[j] = *(const vecf*)(gp + kLanes * j);
              for (int i = 0; i < CB; ++i) {
                const float xv = xp[i];
                for (int j = 0; j < NV; ++j) acc[i][j] += xv * gv[j];
              }
            }
            for (int i = 0; i < CB; ++i)
              for (int j = 0; j < NV; ++j) *(vecf*)(tap + (c0 + i) * O + o0 + kLanes * j) = acc[i][j];
          }
        }
      }
    }
  }
}

// kWgradAccumulators accumulators, with the NV gradient vectors within the registers.
template <int NV>
static void wgrad_image_blocked(const float* x, const float* g, float* dw, int64_t H, int64_t W,
                                int64_t C, int64_t O) {
  constexpr int kWide = kWgradAccumulators / NV > 0 ? kWgradAccumulators / NV : 1;
  if (C % kWide == 0) return wgrad_image<kWide, NV>(x, g, dw, H, W, C, O);
  if (C % 4 == 0) return wgrad_image<4, NV>(x, g, dw, H, W, C, O);
  if (C % 2 == 0) return wgrad_image<2, NV>(x, g, dw, H, W, C, O);
  return wgrad_image<1, NV>(x, g, dw, H, W, C, O);
}

// dw += the kernel gradient of one image.
static void wgrad_image_add(const float* x, const float* g, float* dw, int64_t H, int64_t W, int64_t C,
                            int64_t O) {
  if (O % (4 * kLanes) == 0) return wgrad_image_blocked<4>(x, g, dw, H, W, C, O);
  if (O % (2 * kLanes) == 0) return wgrad_image_blocked<2>(x, g, dw, H, W, C, O);
  return wgrad_image_blocked<1>(x, g, dw, H, W, C, O);
}

static ffi::Error Conv3x3WgradImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g,
                                   ffi::ResultBuffer<ffi::F32> dw) {
  const auto xd = x.dimensions(), gd = g.dimensions();
  if (xd.size() != 4 || gd.size() != 4 || xd[0] != gd[0] || xd[1] != gd[1] || xd[2] != gd[2])
    return ffi::Error::InvalidArgument("conv3x3_wgrad: x [N,H,W,C] and g [N,H,W,O] must share N, H and W");
  const int64_t N = xd[0], H = xd[1], W = xd[2], C = xd[3], O = gd[3];
  if (O % 16 != 0) return ffi::Error::InvalidArgument("conv3x3_wgrad: O must be a multiple of 16");
  const float* x_data = x.typed_data();
  const float* g_data = g.typed_data();
  float* dw_data = dw->typed_data();
  const int64_t size = 9 * C * O;
  std::memset(dw_data, 0, sizeof(float) * size);
  // Items: images. Worker 0 adds into the result, the others into partial sums added at the end.
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(pool.num_threads(), N));
  std::vector<std::vector<float>> partials(workers);
  parallel_for(pool, N, workers, [=, &partials](int64_t n, int64_t worker) {
    float* sum = dw_data;
    if (worker > 0) {
      if (partials[worker].empty()) partials[worker].assign(size, 0.0f);
      sum = partials[worker].data();
    }
    wgrad_image_add(x_data + n * H * W * C, g_data + n * H * W * O, sum, H, W, C, O);
  });
  for (const auto& partial : partials)
    for (int64_t i = 0; i < static_cast<int64_t>(partial.size()); ++i) dw_data[i] += partial[i];
  return ffi::Error::Success();
}

// Both handlers take XLA's thread pool and two float32 buffers, and return one.
static auto two_buffers_to_one() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Ret<ffi::Buffer<ffi::F32>>();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(BinjaxConv3x3To16, Conv3x3To16Impl, two_buffers_to_one());
XLA_FFI_DEFINE_HANDLER_SYMBOL(BinjaxConv3x3Wgrad, Conv3x3WgradImpl, two_buffers_to_one());
