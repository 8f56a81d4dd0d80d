// Weight gradient of a 3x3 convolution (stride 1, 'SAME' zero padding, NHWC input, HWIO kernel,
// float32) as an XLA FFI custom call for the CPU. XLA:CPU runs this gradient as a generic
// convolution at ~35 GFLOP/s per core, after transposing both operands; this loop nest runs it
// at 150-200 GFLOP/s per core (AVX-512) with register-blocked outer products. (XLA's forward and
// input-gradient convolutions, through XNNPACK, already run at ~175-195: they are kept.)
//
//   x  [N,H,W,C]  the convolution's input
//   g  [N,H,W,O]  the gradient of its output
//   dk [3,3,C,O]  dk[ky,kx,c,o] = sum_{n,y,x} x[n, y+ky-1, x+kx-1, c] * g[n,y,x,o]
//
// O must be a multiple of 16. Images are shared out over XLA's intra-op thread pool. Under a
// mesh each device runs this on its own images (see __init__.py) and an all-reduce adds the
// devices' sums, as XLA does for its own convolution.
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

// 16 floats: one AVX-512 register (the compiler splits it on narrower machines); aligned(4)
// makes loads and stores through it unaligned-safe.
typedef float f32x16 __attribute__((vector_size(64), aligned(4)));

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

// For each image row, each of the 9 taps, and each block of CB input x 16*NV output channels:
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
          for (int64_t o0 = 0; o0 < O; o0 += 16 * NV) {
            f32x16 acc[CB][NV];
            for (int i = 0; i < CB; ++i)
              for (int j = 0; j < NV; ++j) acc[i][j] = *(const f32x16*)(tap + (c0 + i) * O + o0 + 16 * j);
            const float* xp = x_row + (x_begin + kx - 1) * C + c0;
            const float* gp = g_row + x_begin * O + o0;
            for (int64_t px = x_begin; px < x_end; ++px, xp += C, gp += O) {
              f32x16 gv[NV];
              for (int j = 0; j < NV; ++j) gv[j] = *(const f32x16*)(gp + 16 * j);
              for (int i = 0; i < CB; ++i) {
                const float xv = xp[i];
                for (int j = 0; j < NV; ++j) acc[i][j] += xv * gv[j];
              }
            }
            for (int i = 0; i < CB; ++i)
              for (int j = 0; j < NV; ++j) *(f32x16*)(tap + (c0 + i) * O + o0 + 16 * j) = acc[i][j];
          }
        }
      }
    }
  }
}

// 16 accumulators: with the NV gradient vectors, within the 32 AVX-512 registers.
template <int NV>
static void wgrad_image_blocked(const float* x, const float* g, float* dw, int64_t H, int64_t W,
                                int64_t C, int64_t O) {
  constexpr int kWide = 16 / NV;
  if (C % kWide == 0) return wgrad_image<kWide, NV>(x, g, dw, H, W, C, O);
  if (C % 4 == 0) return wgrad_image<4, NV>(x, g, dw, H, W, C, O);
  if (C % 2 == 0) return wgrad_image<2, NV>(x, g, dw, H, W, C, O);
  return wgrad_image<1, NV>(x, g, dw, H, W, C, O);
}

// dw += the kernel gradient of one image.
static void wgrad_image_add(const float* x, const float* g, float* dw, int64_t H, int64_t W, int64_t C,
                            int64_t O) {
  if (O % 64 == 0) return wgrad_image_blocked<4>(x, g, dw, H, W, C, O);
  if (O % 32 == 0) return wgrad_image_blocked<2>(x, g, dw, H, W, C, O);
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

XLA_FFI_DEFINE_HANDLER_SYMBOL(BinjaxConv3x3Wgrad, Conv3x3WgradImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
