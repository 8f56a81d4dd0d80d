// 3x3 convolutions (stride 1, 'SAME' zero padding, NHWC input, HWIO kernel, float32) as XLA FFI
// custom calls for the CPU, where XLA:CPU is slow or does more work than it needs:
//
//   BinjaxConv3x3Wgrad  the kernel gradient. XLA runs it as a generic convolution at ~35
//       GFLOP/s per core, after transposing both operands; this runs at 150-210.
//         x [N,H,W,C], g [N,H,W,O] -> dk [3,3,C,O],  O % 16 == 0
//         dk[ky,kx,c,o] = sum_{n,y,x} x[n, y+ky-1, x+kx-1, c] * g[n,y,x,o]
//   BinjaxConv3x3WinogradWgrad  the same kernel gradient by Winograd F(4x4, 3x3), for C and O
//       multiples of 16: 1.1-2.2x faster than the direct one above.
//   BinjaxConv3x3Winograd  the forward pass between multiples of 16 channels (also the input
//       gradient, a forward pass of the flipped kernel) by Winograd F(4x4, 3x3): 4x fewer
//       multiplications than the direct sum; 1.1-2.4x faster than XLA's (XNNPACK) direct convs,
//       which run at 150-199 GFLOP/s per core.
//         x [N,H,W,C], k [3,3,C,O] -> y [N,H,W,O],  C % 16 == 0, O % 16 == 0
//         y[n,y,x,o] = sum_{ky,kx,c} x[n, y+ky-1, x+kx-1, c] * k[ky,kx,c,o]
//   BinjaxConv3x3WinogradAffineRelu  the same with max(y * scale + shift, 0) folded into its
//       store (an eval-mode BatchNorm + ReLU):  x, k, scale [O], shift [O] -> y
//   BinjaxConv3x3To16   the direct forward pass to 16 channels, for inputs of any channel count
//       (an image's 1 or 3). XLA (XNNPACK) runs these at 5-90 GFLOP/s per core; this at 100-170.
//         x [N,H,W,C], k [3,3,C,16] -> y [N,H,W,16]
//
// All are register-blocked outer products, blocked for AVX-512 or, when compiled without it,
// AVX2 (the figures above are AVX-512's; an AVX2 build, measured with -march=haswell on the same
// machine, makes the U-Net step 0.69 s against XLA's 1.22 s). Work is shared out over XLA's
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
constexpr int kWinogradTiles = 6;  // x 2 vectors of output channels; measured best of 4-12
#else
#define BINJAX_LANES 8
constexpr int kWgradAccumulators = 8;
constexpr int kConvPixels = 6;
constexpr int kWinogradTiles = 4;
#endif
constexpr int64_t kWinogradGroupBudget = 6144;  // tiles x max(C, O) per group of tiles
constexpr int64_t kWinogradWgradGroupBudget = 24576;
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

// out[0, size) = the sum over items of what add(item, sum) adds into a zeroed sum. The items are
// cut into up to `workers` contiguous ranges, each summed in item order into a buffer of its own
// (the first into out), and the buffers are added in range order: the same float rounding
// whichever thread takes which range. (Sums per worker over items taken as they came made the
// kernel gradients differ in their last bits from run to run.)
template <typename Add>
static void sum_over_items(ffi::ThreadPool& pool, int64_t items, int64_t workers, int64_t size, float* out,
                           Add add) {
  const int64_t ranges = std::max<int64_t>(1, std::min(workers, items));
  std::vector<std::vector<float>> partials(ranges - 1);
  std::memset(out, 0, sizeof(float) * size);
  parallel_for(pool, ranges, ranges, [=, &partials](int64_t range, int64_t) {
    float* sum = out;
    if (range > 0) {
      partials[range - 1].assign(size, 0.0f);
      sum = partials[range - 1].data();
    }
    for (int64_t item = range * items / ranges; item < (range + 1) * items / ranges; ++item) add(item, sum);
  });
  for (const auto& partial : partials)
    for (int64_t i = 0; i < size; ++i) out[i] += partial[i];
}

//===------------------------------------------------------------------------------------===//
// Forward, any input channels to 16 output channels (direct)
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
// Forward, multiples of 16 input and output channels: Winograd F(4x4, 3x3)
//===------------------------------------------------------------------------------------===//
//
// The same convolution with 4x fewer multiplications (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016): each 4x4 block of output pixels ("tile") comes from a
// 6x6 input patch d as  y = A^T [ sum_c (G k G^T)[.,.,c,:] * (B^T d B)[.,.,c] ] A,  so the 36
// products of the transformed patch V and transformed kernel U are 36 matrix products
//   M[ab][tile][o] = sum_c V[ab][tile][c] U[ab][c][o]
// over a group of tiles, then each tile's A^T M A. The transforms' constants (up to 8, down to
// 1/24) cost accuracy: against a float64 conv, the largest error is 3.5e-6 (16 channels) to
// 1.2e-5 (256) of the largest output, against 4e-7 to 7e-7 for XLA's direct float32 sum; for the
// kernel gradient below 3-4e-6, against 4e-7 to 9e-7 for the direct kernel.

// (B^T d) over one column (or row) of 6 vectors.
static inline void winograd_input_1d(const vecf d[6], vecf r[6]) {
  r[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
  r[1] = -4.0f * (d[1] + d[2]) + d[3] + d[4];
  r[2] = 4.0f * (d[1] - d[2]) - d[3] + d[4];
  r[3] = 2.0f * (d[3] - d[1]) - d[2] + d[4];
  r[4] = 2.0f * (d[1] - d[3]) - d[2] + d[4];
  r[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
}

// (A^T m) over one column (or row) of 6 vectors: 4 outputs.
static inline void winograd_output_1d(const vecf m[6], vecf o[4]) {
  const vecf s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
  o[0] = m[0] + s12 + s34;
  o[1] = d12 + 2.0f * d34;
  o[2] = s12 + 4.0f * s34;
  o[3] = d12 + 8.0f * d34 + m[5];
}

// (G w) over one column (or row) of 3 vectors: 6 outputs.
static inline void winograd_kernel_1d(const vecf w[3], vecf g[6]) {
  const vecf s = w[0] + w[2];
  g[0] = 0.25f * w[0];
  g[1] = (-1.0f / 6) * (s + w[1]);
  g[2] = (-1.0f / 6) * (s - w[1]);
  g[3] = (1.0f / 24) * w[0] + (1.0f / 12) * w[1] + (1.0f / 6) * w[2];
  g[4] = (1.0f / 24) * w[0] - (1.0f / 12) * w[1] + (1.0f / 6) * w[2];
  g[5] = w[2];
}

// U[ab][o / 16][c][o % 16] = (G k[.,.,c,o] G^T)[a][b] for input channels [c0, c1): blocks of 16
// output channels are contiguous, the stream the matrix products read.
static void winograd_kernel_transform(const float* k, int64_t C, int64_t O, int64_t c0, int64_t c1, float* U) {
  for (int64_t c = c0; c < c1; ++c) {
    for (int64_t o = 0; o < O; o += kLanes) {
      vecf rows[6][3];  // (G w)[a][kx]
      for (int kx = 0; kx < 3; ++kx) {
        vecf w[3], g[6];
        for (int ky = 0; ky < 3; ++ky) w[ky] = *(const vecf*)(k + ((ky * 3 + kx) * C + c) * O + o);
        winograd_kernel_1d(w, g);
        for (int a = 0; a < 6; ++a) rows[a][kx] = g[a];
      }
      for (int a = 0; a < 6; ++a) {
        vecf g[6];
        winograd_kernel_1d(rows[a], g);
        for (int b = 0; b < 6; ++b)
          *(vecf*)(U + (a * 6 + b) * C * O + (o / 16) * C * 16 + c * 16 + o % 16) = g[b];
      }
    }
  }
}

// out[ab][t][c] = (T d T^T)[a][b] for tiles [t0, t0 + T) of one image src [H,W,C]: d is tile t's
// kIn x kIn patch from row 4 (t / TW) + first, column 4 (t % TW) + first (zeros outside the
// image), and transform_1d maps kIn vectors to 6. Tile t covers output rows 4 (t / TW) .. + 3
// and columns 4 (t % TW) .. + 3: its input patch is 6 x 6 from -1 (B^T), its output gradient
// 4 x 4 from 0 (A).
template <int kIn, void (*transform_1d)(const vecf*, vecf*)>
static void winograd_tile_transform(const float* src, int64_t H, int64_t W, int64_t C, int64_t TW,
                                    int64_t first, int64_t t0, int64_t T, float* out) {
  const vecf zero{};
  for (int64_t t = 0; t < T; ++t) {
    const int64_t y0 = (t0 + t) / TW * 4 + first, x0 = (t0 + t) % TW * 4 + first;
    for (int64_t c = 0; c < C; c += kLanes) {
      vecf rows[6][kIn];  // (T d)[a][j]
      for (int j = 0; j < kIn; ++j) {
        const int64_t xx = x0 + j;
        vecf d[kIn], r[6];
        for (int i = 0; i < kIn; ++i) {
          const int64_t yy = y0 + i;
          d[i] = (yy >= 0 && yy < H && xx >= 0 && xx < W) ? *(const vecf*)(src + (yy * W + xx) * C + c) : zero;
        }
        transform_1d(d, r);
        for (int a = 0; a < 6; ++a) rows[a][j] = r[a];
      }
      for (int a = 0; a < 6; ++a) {
        vecf v[6];
        transform_1d(rows[a], v);
        for (int b = 0; b < 6; ++b) *(vecf*)(out + ((a * 6 + b) * T + t) * C + c) = v[b];
      }
    }
  }
}

// V[ab][t][c]: the transformed input patches.
static void winograd_input_transform(const float* x, int64_t H, int64_t W, int64_t C, int64_t TW, int64_t t0,
                                     int64_t T, float* V) {
  winograd_tile_transform<6, winograd_input_1d>(x, H, W, C, TW, -1, t0, T, V);
}

// PT tiles x NV vectors of output channels of one product: m[t][o] = sum_c v[t][c] u[c][o].
template <int PT, int NV>
static inline void winograd_product_block(const float* v, const float* u, float* m, int64_t C, int64_t O) {
  vecf acc[PT][NV];
  for (int p = 0; p < PT; ++p)
    for (int j = 0; j < NV; ++j) acc[p][j] = vecf{};
  for (int64_t c = 0; c < C; ++c) {
    vecf uv[NV];  // vector j: block (j kLanes) / 16 of 16 channels, offset (j kLanes) % 16
    for (int j = 0; j < NV; ++j) uv[j] = *(const vecf*)(u + (j * kLanes / 16) * C * 16 + c * 16 + j * kLanes % 16);
    for (int p = 0; p < PT; ++p) {
      const float vv = v[p * C + c];
      for (int j = 0; j < NV; ++j) acc[p][j] += vv * uv[j];
    }
  }
  for (int p = 0; p < PT; ++p)
    for (int j = 0; j < NV; ++j) *(vecf*)(m + p * O + kLanes * j) = acc[p][j];
}

template <int NV>
static void winograd_products_of(const float* v, const float* u, float* m, int64_t o, int64_t T, int64_t C,
                                 int64_t O) {
  int64_t t = 0;
  for (; t + kWinogradTiles <= T; t += kWinogradTiles)
    winograd_product_block<kWinogradTiles, NV>(v + t * C, u + o * C, m + t * O + o, C, O);
  for (; t < T; ++t) winograd_product_block<1, NV>(v + t * C, u + o * C, m + t * O + o, C, O);
}

// M[ab] = V[ab] U[ab] for all 36 products, 2 vectors of output channels at a time (1 for a rest).
static void winograd_products(const float* V, const float* U, float* M, int64_t T, int64_t C, int64_t O) {
  constexpr int64_t kWide = 2 * kLanes;
  for (int ab = 0; ab < 36; ++ab) {
    const float* v = V + ab * T * C;
    const float* u = U + ab * C * O;
    float* m = M + ab * T * O;
    int64_t o = 0;
    for (; o + kWide <= O; o += kWide) winograd_products_of<2>(v, u, m, o, T, C, O);
    for (; o < O; o += kLanes) winograd_products_of<1>(v, u, m, o, T, C, O);
  }
}

// y's pixels of tiles [t0, t0 + T) from their products M[ab][t][o].
typedef int32_t veci __attribute__((vector_size(4 * BINJAX_LANES), aligned(4)));

// max(v, 0), NaN kept as jax.nn.relu keeps it: the comparison's lanes are all ones or zeros.
static inline vecf relu(vecf v) {
  const vecf zero{};
  return (vecf)((veci)v & ~(veci)(v < zero));
}

// With `scale` (and `shift`), each output becomes max(y * scale[o] + shift[o], 0): an eval-mode
// BatchNorm and ReLU folded into the store, saving a pass over the output.
static void winograd_output_transform(const float* M, int64_t H, int64_t W, int64_t O, int64_t TW, int64_t t0,
                                      int64_t T, const float* scale, const float* shift, float* y) {
  for (int64_t t = 0; t < T; ++t) {
    const int64_t y0 = (t0 + t) / TW * 4, x0 = (t0 + t) % TW * 4;
    for (int64_t o = 0; o < O; o += kLanes) {
      vecf gain{}, offset{};
      if (scale != nullptr) gain = *(const vecf*)(scale + o), offset = *(const vecf*)(shift + o);
      vecf rows[4][6];  // (A^T M)[r][b]
      for (int b = 0; b < 6; ++b) {
        vecf m[6], r[4];
        for (int a = 0; a < 6; ++a) m[a] = *(const vecf*)(M + ((a * 6 + b) * T + t) * O + o);
        winograd_output_1d(m, r);
        for (int r_ = 0; r_ < 4; ++r_) rows[r_][b] = r[r_];
      }
      for (int r = 0; r < 4 && y0 + r < H; ++r) {
        vecf out[4];
        winograd_output_1d(rows[r], out);
        if (scale != nullptr)
          for (int s = 0; s < 4; ++s) out[s] = relu(out[s] * gain + offset);
        for (int s = 0; s < 4 && x0 + s < W; ++s) *(vecf*)(y + ((y0 + r) * W + x0 + s) * O + o) = out[s];
      }
    }
  }
}

// The kernel and kernel-gradient transforms, over chunks of input channels [c0, c1).
template <typename Fn>
static void parallel_over_channels(ffi::ThreadPool& pool, int64_t C, int64_t threads, Fn fn) {
  const int64_t chunks = std::min<int64_t>(C, 4 * threads);
  parallel_for(pool, chunks, std::min(threads, chunks),
               [=](int64_t chunk, int64_t) { fn(chunk * C / chunks, (chunk + 1) * C / chunks); });
}

// Tiles per work item: budget / max(C, O), at most `most`, a multiple of kWinogradTiles.
static int64_t winograd_group(int64_t tiles, int64_t C, int64_t O, int64_t budget, int64_t most) {
  const int64_t group = std::min<int64_t>(most, budget / std::max(C, O)) / kWinogradTiles * kWinogradTiles;
  return std::min(tiles, std::max<int64_t>(kWinogradTiles, group));
}

// scale and shift: nullptr, or [O] each (see winograd_output_transform).
static ffi::Error winograd_forward(ffi::ThreadPool& pool, ffi::Buffer<ffi::F32>& x, ffi::Buffer<ffi::F32>& k,
                                   const float* scale, const float* shift, ffi::ResultBuffer<ffi::F32>& y) {
  const auto xd = x.dimensions(), kd = k.dimensions();
  if (xd.size() != 4 || kd.size() != 4 || kd[0] != 3 || kd[1] != 3 || kd[2] != xd[3])
    return ffi::Error::InvalidArgument("conv3x3_winograd: x [N,H,W,C] and k [3,3,C,O] expected");
  const int64_t N = xd[0], H = xd[1], W = xd[2], C = xd[3], O = kd[3];
  if (C % 16 != 0 || O % 16 != 0)
    return ffi::Error::InvalidArgument("conv3x3_winograd: C and O must be multiples of 16");
  if (N * H * W == 0) return ffi::Error::Success();  // nothing to write
  const float* x_data = x.typed_data();
  const float* k_data = k.typed_data();
  float* y_data = y->typed_data();
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());

  // Kept per thread across calls: allocating them afresh each call cost page faults.
  static thread_local std::vector<float> transformed_kernel;
  if (transformed_kernel.size() < static_cast<size_t>(36 * C * O)) transformed_kernel.resize(36 * C * O);
  float* U = transformed_kernel.data();
  parallel_over_channels(pool, C, threads, [=](int64_t c0, int64_t c1) {
    winograd_kernel_transform(k_data, C, O, c0, c1, U);
  });

  // Items: groups of tiles of one image, sized so that their V and M (36 x tiles x (C + O)
  // floats) stay within the core's L2 cache; measured best of 1.5k-24k (tiles x channels).
  const int64_t TW = (W + 3) / 4, tiles = (H + 3) / 4 * TW;
  const int64_t group = winograd_group(tiles, C, O, kWinogradGroupBudget, 192);
  const int64_t groups = (tiles + group - 1) / group, items = N * groups;
  parallel_for(pool, items, std::min(threads, items), [=](int64_t item, int64_t) {
    static thread_local std::vector<float> scratch;
    if (scratch.size() < static_cast<size_t>(36 * group * (C + O))) scratch.resize(36 * group * (C + O));
    float* V = scratch.data();
    float* M = V + 36 * group * C;
    const int64_t n = item / groups, t0 = item % groups * group, T = std::min(group, tiles - t0);
    winograd_input_transform(x_data + n * H * W * C, H, W, C, TW, t0, T, V);
    winograd_products(V, U, M, T, C, O);
    winograd_output_transform(M, H, W, O, TW, t0, T, scale, shift, y_data + n * H * W * O);
  });
  return ffi::Error::Success();
}

static ffi::Error Conv3x3WinogradImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> k,
                                      ffi::ResultBuffer<ffi::F32> y) {
  return winograd_forward(pool, x, k, nullptr, nullptr, y);
}

static ffi::Error Conv3x3WinogradAffineReluImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                                                ffi::Buffer<ffi::F32> k, ffi::Buffer<ffi::F32> scale,
                                                ffi::Buffer<ffi::F32> shift, ffi::ResultBuffer<ffi::F32> y) {
  const int64_t O = k.dimensions().back();
  if (scale.element_count() != O || shift.element_count() != O)
    return ffi::Error::InvalidArgument("conv3x3_winograd_affine_relu: scale and shift must be [O]");
  return winograd_forward(pool, x, k, scale.typed_data(), shift.typed_data(), y);
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
  // Items: images.
  sum_over_items(pool, N, pool.num_threads(), 9 * C * O, dw_data, [=](int64_t n, float* sum) {
    wgrad_image_add(x_data + n * H * W * C, g_data + n * H * W * O, sum, H, W, C, O);
  });
  return ffi::Error::Success();
}

//===------------------------------------------------------------------------------------===//
// Kernel gradient by Winograd F(4x4, 3x3)
//===------------------------------------------------------------------------------------===//
//
// The transpose of the forward pass above: with V the transformed input patches and
// dM = A g A^T each 4x4 tile of the output gradient g transformed,
//   dU[ab][c][o] = sum_tiles V[ab][tile][c] dM[ab][tile][o],  dk[i][j] = sum_ab G[a][i] G[b][j] dU[ab]
// 36 products per 16 output pixels against the direct sum's 144.

// (A g) over one column (or row) of 4 vectors: 6 outputs.
static inline void winograd_grad_1d(const vecf g[4], vecf m[6]) {
  const vecf s02 = g[0] + g[2], s13 = g[1] + g[3];
  const vecf t02 = g[0] + 4.0f * g[2], t13 = 2.0f * g[1] + 8.0f * g[3];
  m[0] = g[0];
  m[1] = s02 + s13;
  m[2] = s02 - s13;
  m[3] = t02 + t13;
  m[4] = t02 - t13;
  m[5] = g[3];
}

// (G^T u) over one column (or row) of 6 vectors: 3 outputs.
static inline void winograd_kernel_grad_1d(const vecf u[6], vecf w[3]) {
  const vecf s12 = u[1] + u[2], d12 = u[2] - u[1], s34 = u[3] + u[4], d34 = u[3] - u[4];
  w[0] = 0.25f * u[0] - (1.0f / 6) * s12 + (1.0f / 24) * s34;
  w[1] = (1.0f / 6) * d12 + (1.0f / 12) * d34;
  w[2] = (1.0f / 6) * (s34 - s12) + u[5];
}

// dM[ab][t][o]: the transformed 4x4 tiles of one image's output gradient g [H,W,O].
static void winograd_grad_transform(const float* g, int64_t H, int64_t W, int64_t O, int64_t TW, int64_t t0,
                                    int64_t T, float* dM) {
  winograd_tile_transform<4, winograd_grad_1d>(g, H, W, O, TW, 0, t0, T, dM);
}

// dU[ab][c][o] += sum_t V[ab][t][c] dM[ab][t][o], CB input channels x NV vectors at a time.
template <int CB, int NV>
static void winograd_grad_products_of(const float* v, const float* dm, float* du, int64_t T, int64_t C,
                                      int64_t O) {
  for (int64_t c0 = 0; c0 < C; c0 += CB) {
    for (int64_t o0 = 0; o0 < O; o0 += kLanes * NV) {
      vecf acc[CB][NV];
      for (int i = 0; i < CB; ++i)
        for (int j = 0; j < NV; ++j) acc[i][j] = *(const vecf*)(du + (c0 + i) * O + o0 + kLanes * j);
      for (int64_t t = 0; t < T; ++t) {
        vecf gv[NV];
        for (int j = 0; j < NV; ++j) gv[j] = *(const vecf*)(dm + t * O + o0 + kLanes * j);
        for (int i = 0; i < CB; ++i) {
          const float xv = v[t * C + c0 + i];
          for (int j = 0; j < NV; ++j) acc[i][j] += xv * gv[j];
        }
      }
      for (int i = 0; i < CB; ++i)
        for (int j = 0; j < NV; ++j) *(vecf*)(du + (c0 + i) * O + o0 + kLanes * j) = acc[i][j];
    }
  }
}

static void winograd_grad_products(const float* V, const float* dM, float* dU, int64_t T, int64_t C, int64_t O) {
  for (int ab = 0; ab < 36; ++ab) {
    const float* v = V + ab * T * C;
    const float* dm = dM + ab * T * O;
    float* du = dU + ab * C * O;
    if (O % (2 * kLanes) == 0) winograd_grad_products_of<kWgradAccumulators / 2, 2>(v, dm, du, T, C, O);
    else winograd_grad_products_of<kWgradAccumulators, 1>(v, dm, du, T, C, O);
  }
}

// dk [3,3,C,O] from dU over input channels [c0, c1).
static void winograd_kernel_grad_transform(const float* dU, int64_t C, int64_t O, int64_t c0, int64_t c1,
                                           float* dk) {
  for (int64_t c = c0; c < c1; ++c) {
    for (int64_t o = 0; o < O; o += kLanes) {
      vecf rows[3][6];  // (G^T dU)[i][b]
      for (int b = 0; b < 6; ++b) {
        vecf u[6], w[3];
        for (int a = 0; a < 6; ++a) u[a] = *(const vecf*)(dU + ((a * 6 + b) * C + c) * O + o);
        winograd_kernel_grad_1d(u, w);
        for (int i = 0; i < 3; ++i) rows[i][b] = w[i];
      }
      for (int i = 0; i < 3; ++i) {
        vecf w[3];
        winograd_kernel_grad_1d(rows[i], w);
        for (int j = 0; j < 3; ++j) *(vecf*)(dk + ((i * 3 + j) * C + c) * O + o) = w[j];
      }
    }
  }
}

static ffi::Error Conv3x3WinogradWgradImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g,
                                           ffi::ResultBuffer<ffi::F32> dk) {
  const auto xd = x.dimensions(), gd = g.dimensions();
  if (xd.size() != 4 || gd.size() != 4 || xd[0] != gd[0] || xd[1] != gd[1] || xd[2] != gd[2])
    return ffi::Error::InvalidArgument("conv3x3_winograd_wgrad: x [N,H,W,C] and g [N,H,W,O] must share N, H and W");
  const int64_t N = xd[0], H = xd[1], W = xd[2], C = xd[3], O = gd[3];
  if (C % 16 != 0 || O % 16 != 0)
    return ffi::Error::InvalidArgument("conv3x3_winograd_wgrad: C and O must be multiples of 16");
  const float* x_data = x.typed_data();
  const float* g_data = g.typed_data();
  float* dk_data = dk->typed_data();
  if (N * H * W == 0) {  // no pixels: a zero gradient
    std::memset(dk_data, 0, sizeof(float) * 9 * C * O);
    return ffi::Error::Success();
  }
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  // Larger groups than the forward pass's: each group adds into all of dU once.
  const int64_t TW = (W + 3) / 4, tiles = (H + 3) / 4 * TW;
  const int64_t group = winograd_group(tiles, C, O, kWinogradWgradGroupBudget, 512);
  const int64_t groups = (tiles + group - 1) / group, items = N * groups;
  std::unique_ptr<float[]> transformed_gradient(new float[36 * C * O]);  // dU, zeroed by the sum
  float* dU = transformed_gradient.get();
  sum_over_items(pool, items, threads, 36 * C * O, dU, [=](int64_t item, float* sum) {
    static thread_local std::vector<float> scratch;
    if (scratch.size() < static_cast<size_t>(36 * group * (C + O))) scratch.resize(36 * group * (C + O));
    float* V = scratch.data();
    float* dM = V + 36 * group * C;
    const int64_t n = item / groups, t0 = item % groups * group, T = std::min(group, tiles - t0);
    winograd_input_transform(x_data + n * H * W * C, H, W, C, TW, t0, T, V);
    winograd_grad_transform(g_data + n * H * W * O, H, W, O, TW, t0, T, dM);
    winograd_grad_products(V, dM, sum, T, C, O);
  });
  parallel_over_channels(pool, C, threads, [=](int64_t c0, int64_t c1) {
    winograd_kernel_grad_transform(dU, C, O, c0, c1, dk_data);
  });
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
XLA_FFI_DEFINE_HANDLER_SYMBOL(BinjaxConv3x3Winograd, Conv3x3WinogradImpl, two_buffers_to_one());
XLA_FFI_DEFINE_HANDLER_SYMBOL(BinjaxConv3x3WinogradWgrad, Conv3x3WinogradWgradImpl, two_buffers_to_one());
XLA_FFI_DEFINE_HANDLER_SYMBOL(BinjaxConv3x3WinogradAffineRelu, Conv3x3WinogradAffineReluImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
