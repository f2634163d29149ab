#pragma once
// The masked ReLU  y = a * relu(x) + (1 - a) * x  (ReLU where a = 1, identity where a = 0), as one
// fused pass over the data on CPU and as plain LibTorch ops everywhere else.
//
// Layout: the activation x is viewed as [N, M, K] and the gate a as [M]: element granularity is
// K = 1 (M = C*H*W), channel granularity K = H*W (M = C), layer granularity M = 1. The gate entry
// of x[n, m, k] is a[m].
//
// The convention, the same on every path (fused CPU, plain ops on other devices and dtypes, the
// fully kept slot's relu(), the fully linearized slot's identity):
//   y     = x                  where x >= 0 or x is NaN (so NaN propagates, +inf stays +inf)
//   y     = (1 - a) * x        where x < 0; 0 where moreover a = 1 (a kept ReLU maps -inf to 0,
//                              as relu does; elsewhere -inf gives (1 - a) * -inf: -inf for a < 1)
//   dL/dx = g * (1 - a * [x < 0])   i.e. slope 1 at x = 0 (the ReLU's subgradient there is 1)
//   dL/da = -sum g * min(x, 0)      over whatever shares the gate entry (NaN where x is NaN)
// The fused pass is the reference; the plain-op path spells the same rule with torch::where and
// its own backward, so that no LibTorch subgradient choice at a tie (relu'(0) = 0, min's split
// gradient) leaks in.
#include <linearize/support/error.hpp>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

// at::vec picks its SIMD implementation from CPU_CAPABILITY_* macros that only ATen's own build
// sets; in user code they are unset and at::vec falls back to scalar loops (measured 3x slower
// than plain LibTorch ops). When the compiler targets AVX-512 or AVX2 + FMA (-march=native, -mavx2 -mfma)
// select at::vec's AVX-512 or AVX2 implementation. It lives in an inline namespace named after the
// capability, so it cannot clash with other translation units built without it.
#if !defined(CPU_CAPABILITY) && !defined(_MSC_VER) && __has_include(<sleef.h>)
// (at::vec's SIMD code includes SLEEF: Debian's libsleef-dev)
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#elif defined(__AVX2__) && defined(__FMA__)
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#endif
#endif
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

// ODR safety: the fused code below is compiled for whatever capability this translation unit
// targets, so two translation units built with different -m flags hold different definitions of
// it. Like at::vec itself (ATen's Note [CPU_CAPABILITY namespace]), it therefore lives in an
// inline namespace named after the capability: kernels::avx512, kernels::avx2, kernels::scalar
// (also kernels::neon, vsx, zvector, after at::vec's other implementations), so each capability
// has its own symbols while callers keep writing kernels::masked_relu. What is the same for
// every capability (layouts, the plain-op path) stays in kernels itself.
// Not covered: inline code *above* the kernel (ReluSlot::forward, say) is one symbol for all
// translation units, and the linker keeps one copy of it, which calls its own capability's
// kernel; a program that mixes -m flags must still run only on CPUs that have all of them.
#if defined(CPU_CAPABILITY_AVX512)
#define LINEARIZE_KERNELS_ISA avx512
#elif defined(CPU_CAPABILITY_AVX2)
#define LINEARIZE_KERNELS_ISA avx2
#elif defined(__VSX__) || defined(CPU_CAPABILITY_VSX)
#define LINEARIZE_KERNELS_ISA vsx
#elif defined(CPU_CAPABILITY_ZVECTOR)
#define LINEARIZE_KERNELS_ISA zvector
#elif defined(__aarch64__)
#define LINEARIZE_KERNELS_ISA neon
#else
#define LINEARIZE_KERNELS_ISA scalar
#endif

namespace linearize::kernels {

/// x viewed as [batch, entries, span]; the gate has `entries` values.
struct gate_layout {
  int64_t batch = 0;
  int64_t entries = 0;
  int64_t span = 0;
};

/// The layout of `x` against a gate of `gate_entries` values (leading dimension = batch).
inline gate_layout layout_of(const torch::Tensor& x, int64_t gate_entries) {
  require(x.dim() >= 1, "masked ReLU: input must have a batch dimension, got a 0-d tensor");
  const int64_t batch = x.size(0);
  const int64_t per_sample = batch == 0 ? 0 : x.numel() / batch;
  require(gate_entries > 0 && per_sample % gate_entries == 0, "masked ReLU: gate of ",
          gate_entries, " entries does not divide the ", per_sample,
          " values of one sample of input ", x.sizes());
  return {batch, gate_entries, per_sample / gate_entries};
}

/// Whether the fused pass applies: CPU, float or double, same dtype for input and gate.
inline bool fused_applies(const torch::Tensor& x, const torch::Tensor& gate) {
  const auto t = x.scalar_type();
  return x.device().is_cpu() && gate.device().is_cpu() && gate.scalar_type() == t &&
         (t == torch::kFloat || t == torch::kDouble);
}

// ---- plain LibTorch ops: any device, any floating dtype --------------------------------------
namespace plain {

/// x as [N, M, K] and the gate as [1, M, 1], ready to broadcast.
inline std::pair<torch::Tensor, torch::Tensor> broadcast_views(const torch::Tensor& x,
                                                               const torch::Tensor& gate) {
  const gate_layout l = layout_of(x, gate.numel());
  return {x.reshape({l.batch, l.entries, l.span}), gate.reshape({1, l.entries, 1}).to(x.dtype())};
}

/// y by the convention at the top of this file, for xv [N, M, K] and a [1, M, 1].
inline torch::Tensor masked_relu_values(const torch::Tensor& xv, const torch::Tensor& a) {
  // (1 - a) * x where x < 0; where a = 1 that product is 0 even for x = -inf (0 * inf is NaN).
  const auto linearized = ((1 - a) * xv).masked_fill(a.eq(1), 0);
  return torch::where(xv.lt(0), linearized, xv);
}

/// The convention as an autograd function: forward and backward each a few plain ops, so that
/// the gradient at x = 0 is the convention's and not whatever torch's ops give at a tie.
struct masked_relu_function : torch::autograd::Function<masked_relu_function> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& gate) {
    ctx->save_for_backward({x, gate});
    const auto [xv, a] = broadcast_views(x, gate);
    return masked_relu_values(xv, a).reshape(x.sizes());
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& gate = saved[1];
    const auto [xv, a] = broadcast_views(x, gate);
    const auto g = grads[0].reshape(xv.sizes());
    torch::Tensor dx, da;
    if (ctx->needs_input_grad(0)) dx = torch::where(xv.lt(0), g * (1 - a), g).reshape(x.sizes());
    if (ctx->needs_input_grad(1))
      da = -(g * xv.clamp_max(0)).sum(std::vector<int64_t>{0, 2}).reshape(gate.sizes()).to(gate.dtype());
    return {dx, da};
  }
};

/// relu by the convention (slope 1 at 0): relu's values, dL/dx = g * [not x < 0].
struct relu_function : torch::autograd::Function<relu_function> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    return torch::relu(x);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto x = ctx->get_saved_variables()[0];
    return {grads[0].masked_fill(x.lt(0), 0)};
  }
};

/// y = a * relu(x) + (1 - a) * r for a replacement's output r (x's shape), relu by the
/// convention. A branch whose weight is exactly 0 is left out, so that r's infinities and NaNs do
/// not reach kept positions (a = 1), nor relu's +inf linearized ones (a = 0). The gradient of r
/// is g * (1 - a); autograd carries it on to x and to the replacement's parameters.
struct blend_function : torch::autograd::Function<blend_function> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& gate, const torch::Tensor& r) {
    ctx->save_for_backward({x, gate, r});
    const auto [xv, a] = broadcast_views(x, gate);
    const auto rv = r.reshape(xv.sizes());
    const auto kept = torch::relu(xv);
    const auto mixed = torch::where(a.eq(0), rv, a * kept + (1 - a) * rv);
    return torch::where(a.eq(1), kept, mixed).reshape(x.sizes());
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& gate = saved[1];
    const torch::Tensor& r = saved[2];
    const auto [xv, a] = broadcast_views(x, gate);
    const auto g = grads[0].reshape(xv.sizes());
    torch::Tensor dx, da, dr;
    if (ctx->needs_input_grad(0)) dx = (g * a).masked_fill(xv.lt(0), 0).reshape(x.sizes());
    if (ctx->needs_input_grad(1))
      da = (g * (torch::relu(xv) - r.reshape(xv.sizes()))).sum(std::vector<int64_t>{0, 2}).reshape(gate.sizes()).to(gate.dtype());
    if (ctx->needs_input_grad(2)) dr = (g * (1 - a)).reshape(r.sizes());
    return {dx, da, dr};
  }
};

}  // namespace plain

/// The formula as the SNL code writes it, relu(x) * a + (1 - a) * x, in plain ops with torch's
/// own autograd: the baseline the benchmark measures the fused pass against. It is not the
/// convention at ties: torch's relu has slope 0 at x = 0, so its dL/dx there is g * (1 - a), and
/// -inf gives NaN. `gate` is flat [M]; it is reshaped to broadcast against x viewed as [N, M, K].
inline torch::Tensor composed_masked_relu(const torch::Tensor& x, const torch::Tensor& gate) {
  const auto [xv, a] = plain::broadcast_views(x, gate);
  return (torch::relu(xv) * a + (1 - a) * xv).reshape(x.sizes());
}

/// The masked ReLU by the convention, in plain ops: the path masked_relu takes where the fused
/// pass does not apply (other devices, other dtypes).
inline torch::Tensor plain_masked_relu(const torch::Tensor& x, const torch::Tensor& gate) {
  return plain::masked_relu_function::apply(x, gate.reshape({-1}));
}

/// y = a * relu(x) + (1 - a) * r: the masked ReLU where a replacement's output `r` (x's shape)
/// stands in for x at linearized positions (see plain::blend_function). Plain ops, any device.
inline torch::Tensor masked_blend(const torch::Tensor& x, const torch::Tensor& gate,
                                  const torch::Tensor& r) {
  require(r.sizes() == x.sizes(), "masked ReLU: replacement output of shape ", r.sizes(),
          " for input of shape ", x.sizes(), "; expected the input's shape");
  require(gate.device() == x.device(), "masked ReLU: gate on ", gate.device(), " but input on ",
          x.device(), "; expected both on the same device");
  return plain::blend_function::apply(x, gate.reshape({-1}).to(x.dtype()), r.to(x.dtype()));
}

// ---- the fused CPU pass, compiled for this translation unit's capability ---------------------
inline namespace LINEARIZE_KERNELS_ISA {

/// The SIMD implementation the fused kernel was compiled with in this translation unit.
[[nodiscard]] constexpr const char* simd_name() {
#if defined(CPU_CAPABILITY_AVX512)
  return "avx512";
#elif defined(CPU_CAPABILITY_AVX2)
  return "avx2";
#else
  return "scalar (compile with -mavx2 -mfma or -march=native for SIMD)";
#endif
}

// The namespace must name the at::vec implementation actually in use. They differ when at::vec
// was included before this header without the capability macros it sets above.
#if defined(CPU_CAPABILITY_AVX512)
template <class V>
inline constexpr bool vec_is_native = requires(const V& v) { static_cast<__m512>(v); };
#elif defined(CPU_CAPABILITY_AVX2)
template <class V>
inline constexpr bool vec_is_native = requires(const V& v) { static_cast<__m256>(v); };
#else
template <class V>
inline constexpr bool vec_is_native = true;
#endif
static_assert(vec_is_native<at::vec::Vectorized<float>>,
              "linearize/core/kernels.hpp: at::vec is not the implementation this header selected "
              "(CPU_CAPABILITY_*); include this header before <ATen/cpu/vec/vec.h>");

// GCC 12 reports -Wmaybe-uninitialized inside its own AVX-512 intrinsics headers when at::vec's
// AVX-512 code is instantiated here (a known false positive of _mm512_undefined_*).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace detail {

// Elements per parallel task: large enough that scheduling costs vanish, small enough that two
// cores get balanced work on the smallest ResNet18 activation (512x4x4 at batch 128).
inline constexpr int64_t grain = 16384;

// ---- element granularity: samples in blocks --------------------------------------------------
// With an element gate every sample reads the whole gate alongside its input: a third stream
// next to input and output, measured at 1.3-1.5x the time of a copy even where the gate sits in
// L1. Loading one gate vector for `rows` samples at a time cuts that stream by the block height
// (4 rows: 1.1-1.2x a copy where the data stay in cache, measured; 8 rows: slower again, too
// many streams).
inline constexpr int64_t row_block = 4;

// One tile: `Rows` samples against one piece of the gate, the piece's first element at offset
// `base`, rows `stride` apart. vec_op(va, o) handles the vector at offset o of every row with the
// gate vector va loaded once for all rows; scalar_op(a_j, o) the elements past the last whole
// vector.
// The operations come by value and capture by value: vector stores may alias anything, so
// pointers read through a reference would be reloaded after every store (measured 5-12% slower).
template <int Rows, class T, class VecOp, class ScalarOp>
void over_rows(const T* a, int64_t base, int64_t stride, int64_t len, VecOp vec_op,
               ScalarOp scalar_op) {
  using Vec = at::vec::Vectorized<T>;
  int64_t j = 0;
  for (; j + Vec::size() <= len; j += Vec::size()) {
    const Vec va = Vec::loadu(a + j);
    for (int r = 0; r < Rows; ++r) vec_op(va, base + r * stride + j);
  }
  for (; j < len; ++j)
    for (int r = 0; r < Rows; ++r) scalar_op(a[j], base + r * stride + j);
}

// Runs vec_op / scalar_op (see over_rows; offsets index the whole [batch, entries] array)
// over tiles of at most row_block samples x a piece of the entries, in parallel; done() after
// each tile. Pieces split the entries only when there are too few sample blocks to keep every
// thread busy (batch 1 at inference, for instance); each piece is a whole number of vectors.
template <class T, class VecOp, class ScalarOp, class Done>
void for_each_row_tile(gate_layout l, const T* a, VecOp vec_op, ScalarOp scalar_op, Done done) {
  constexpr int64_t vec_size = at::vec::Vectorized<T>::size();
  const int64_t blocks = (l.batch + row_block - 1) / row_block;
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  int64_t pieces = blocks >= threads ? 1 : (threads + blocks - 1) / blocks;
  pieces = std::max<int64_t>(1, std::min(pieces, l.entries / std::max<int64_t>(vec_size, grain / row_block)));
  const int64_t piece = ((l.entries + pieces - 1) / pieces + vec_size - 1) / vec_size * vec_size;
  const int64_t tiles = blocks * pieces;
  const int64_t tile_grain = std::max<int64_t>(1, grain / (row_block * piece));
  at::parallel_for(0, tiles, tile_grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = (t / pieces) * row_block, m0 = (t % pieces) * piece;
      const int64_t rows = std::min(row_block, l.batch - n0), len = std::min(piece, l.entries - m0);
      if (len <= 0) continue;
      const int64_t base = n0 * l.entries + m0;
      if (rows == row_block) {
        over_rows<row_block>(a + m0, base, l.entries, len, vec_op, scalar_op);
      } else {
        for (int64_t r = 0; r < rows; ++r)
          over_rows<1>(a + m0, base + r * l.entries, 0, len, vec_op, scalar_op);
      }
      done();
    }
  });
}

// Channel / layer granularity: runs op(i, gate value, len) over the runs of elements from
// offset i that share one gate value, in parallel.
template <class T, class Op>
void for_each_span(gate_layout l, const T* a, Op op) {
  const int64_t total = l.batch * l.entries * l.span;
  at::parallel_for(0, total, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end;) {
      const int64_t k = i % l.span, len = std::min(end - i, l.span - k);
      op(i, a[(i / l.span) % l.entries], len);
      i += len;
    }
  });
}

// ---- forward -------------------------------------------------------------------------------
// Outputs at least this large are written around the cache (non-temporal stores): input and
// output then no longer fit one 32 MiB L3 slice, so the output would be evicted before the next
// layer reads it anyway, and streaming saves the read-for-ownership of every output line.
// Measured at 128x64x32x32 (32 MiB): 5-8% faster than ordinary stores (medians of interleaved
// runs); at 16 MiB streaming was slower (the output still fits in cache), hence the threshold.
inline constexpr int64_t stream_bytes = 24LL << 20;

// Stores v at p, aligned to the vector width, bypassing the cache where the ISA allows.
template <class T>
void stream_store(T* p, const at::vec::Vectorized<T>& v) {
#if defined(CPU_CAPABILITY_AVX512)
  if constexpr (std::is_same_v<T, float>) return _mm512_stream_ps(p, v);
  if constexpr (std::is_same_v<T, double>) return _mm512_stream_pd(p, v);
#elif defined(CPU_CAPABILITY_AVX2)
  if constexpr (std::is_same_v<T, float>) return _mm256_stream_ps(p, v);
  if constexpr (std::is_same_v<T, double>) return _mm256_stream_pd(p, v);
#endif
  v.store(p);
}

// Makes this thread's streamed stores visible before the parallel region ends.
inline void stream_fence() {
#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
  _mm_sfence();
#endif
}

// y for one element and one vector, by the convention: x where x >= 0 or NaN, (1 - a) * x where
// x < 0, and 0 there where a = 1 (masking the product rather than computing x - a * min(x, 0),
// which gives NaN at x = -inf for every a). For a gate vector shared by several rows the
// compiler computes 1 - a and a != 1 once.
template <class T>
T masked_value(T x, T a) {
  return x < T(0) ? (a == T(1) ? T(0) : (T(1) - a) * x) : x;
}
template <class T>
at::vec::Vectorized<T> masked_value(const at::vec::Vectorized<T>& vx, const at::vec::Vectorized<T>& va) {
  using Vec = at::vec::Vectorized<T>;
  const Vec one(T(1));
  return Vec::blendv(vx, ((one - va) * vx) & (va != one), vx < Vec(T(0)));
}

template <class T>
void forward_constant(const T* x, T a, T* y, int64_t len) {  // one gate value for the span
  using Vec = at::vec::Vectorized<T>;
  const Vec va(a);
  int64_t j = 0;
  for (; j + Vec::size() <= len; j += Vec::size()) masked_value(Vec::loadu(x + j), va).store(y + j);
  for (; j < len; ++j) y[j] = masked_value(x[j], a);
}

template <class T>
void forward_pass(const T* x, const T* a, T* y, gate_layout l) {
  if (l.span == 1) {
    using Vec = at::vec::Vectorized<T>;
    constexpr auto width = static_cast<int64_t>(sizeof(Vec));
    // Streaming needs every row start aligned: y aligned and rows a whole number of vectors.
    const bool stream = l.batch * l.entries * static_cast<int64_t>(sizeof(T)) >= stream_bytes &&
                        reinterpret_cast<std::uintptr_t>(y) % width == 0 &&
                        l.entries % Vec::size() == 0;
    const auto scalar = [x, y](T aj, int64_t o) { y[o] = masked_value(x[o], aj); };
    const auto value = [x](const Vec& va, int64_t o) { return masked_value(Vec::loadu(x + o), va); };
    if (stream)
      for_each_row_tile(l, a, [y, value](const Vec& va, int64_t o) { stream_store(y + o, value(va, o)); },
                        scalar, stream_fence);
    else
      for_each_row_tile(l, a, [y, value](const Vec& va, int64_t o) { value(va, o).store(y + o); },
                        scalar, [] {});
    return;
  }
  for_each_span(l, a, [x, y](int64_t i, T ai, int64_t len) { forward_constant(x + i, ai, y + i, len); });
}

// ---- backward ------------------------------------------------------------------------------
// dx = g where x >= 0, g * (1 - a) where x < 0. Written as g - a * g * [x < 0].
template <class T>
void backward_dx_constant(const T* g, const T* x, T a, T* dx, int64_t len) {
  using Vec = at::vec::Vectorized<T>;
  const Vec zero(T(0)), va(a);
  int64_t j = 0;
  for (; j + Vec::size() <= len; j += Vec::size()) {
    const Vec vg = Vec::loadu(g + j), vx = Vec::loadu(x + j);
    Vec::blendv(vg, vg - va * vg, vx < zero).store(dx + j);
  }
  for (; j < len; ++j) dx[j] = x[j] < T(0) ? g[j] - a * g[j] : g[j];
}

// Element granularity, both gradients: da[j] -= g * min(x, 0) accumulated over the batch.
template <class T>
void backward_both_varying(const T* g, const T* x, const T* a, T* dx, T* da, int64_t len) {
  using Vec = at::vec::Vectorized<T>;
  const Vec zero(T(0));
  int64_t j = 0;
  for (; j + Vec::size() <= len; j += Vec::size()) {
    const Vec vg = Vec::loadu(g + j), vx = Vec::loadu(x + j);
    const Vec neg = at::vec::clamp_max(vx, zero);
    Vec::blendv(vg, vg - Vec::loadu(a + j) * vg, vx < zero).store(dx + j);
    (Vec::loadu(da + j) - vg * neg).store(da + j);
  }
  for (; j < len; ++j) {
    dx[j] = x[j] < T(0) ? g[j] - a[j] * g[j] : g[j];
    da[j] -= g[j] * std::min(x[j], T(0));
  }
}

// One span with a shared gate value: writes dx (if asked) and returns -sum g * min(x, 0),
// accumulated in blocks so that float sums over large spans stay accurate.
template <class T>
double backward_span_constant(const T* g, const T* x, T a, T* dx, int64_t len) {
  using Vec = at::vec::Vectorized<T>;
  constexpr int64_t block = 1024;
  const Vec zero(T(0)), va(a);
  double total = 0;
  for (int64_t b0 = 0; b0 < len; b0 += block) {
    const int64_t b1 = std::min(len, b0 + block);
    Vec acc(T(0));
    int64_t j = b0;
    for (; j + Vec::size() <= b1; j += Vec::size()) {
      const Vec vg = Vec::loadu(g + j), vx = Vec::loadu(x + j);
      if (dx) Vec::blendv(vg, vg - va * vg, vx < zero).store(dx + j);
      acc = acc - vg * at::vec::clamp_max(vx, zero);
    }
    T lanes[Vec::size()];
    acc.store(lanes);
    double part = 0;
    for (int64_t v = 0; v < Vec::size(); ++v) part += lanes[v];
    for (; j < b1; ++j) {
      if (dx) dx[j] = x[j] < T(0) ? g[j] - a * g[j] : g[j];
      part -= static_cast<double>(g[j]) * std::min(x[j], T(0));
    }
    total += part;
  }
  return total;
}

template <class T>
void backward_pass(const T* g, const T* x, const T* a, T* dx, T* da, gate_layout l) {
  if (!da && l.span == 1) {  // hard mask or frozen gate, element granularity: only dx
    using Vec = at::vec::Vectorized<T>;
    for_each_row_tile(
        l, a,
        [g, x, dx](const Vec& va, int64_t o) {
          const Vec vg = Vec::loadu(g + o), vx = Vec::loadu(x + o);
          Vec::blendv(vg, vg - va * vg, vx < Vec(T(0))).store(dx + o);
        },
        [g, x, dx](T aj, int64_t o) { dx[o] = x[o] < T(0) ? g[o] - aj * g[o] : g[o]; }, [] {});
    return;
  }
  if (!da) {  // hard mask or frozen gate, shared gate values: only dx, one flat pass
    for_each_span(l, a, [g, x, dx](int64_t i, T ai, int64_t len) {
      backward_dx_constant(g + i, x + i, ai, dx + i, len);
    });
    return;
  }
  if (l.span == 1) {
    // Element granularity: tasks own disjoint ranges of gate entries and sweep the batch, so
    // da needs no reduction across tasks.
    std::fill(da, da + l.entries, T(0));
    const int64_t entry_grain = std::max<int64_t>(256, grain / std::max<int64_t>(1, l.batch));
    at::parallel_for(0, l.entries, entry_grain, [&](int64_t m0, int64_t m1) {
      std::vector<T> scratch(dx ? 0 : m1 - m0);  // dx not wanted: write it to a throwaway row
      for (int64_t n = 0; n < l.batch; ++n) {
        const int64_t off = n * l.entries + m0;
        T* dx_row = dx ? dx + off : scratch.data();
        backward_both_varying(g + off, x + off, a + m0, dx_row, da + m0, m1 - m0);
      }
    });
    return;
  }
  // Channel / layer granularity: one partial sum per (sample, entry) row, reduced afterwards.
  const int64_t rows = l.batch * l.entries;
  std::vector<double> partial(static_cast<size_t>(rows));
  const int64_t row_grain = std::max<int64_t>(1, grain / l.span);
  at::parallel_for(0, rows, row_grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t off = r * l.span;
      partial[r] = backward_span_constant(g + off, x + off, a[r % l.entries], dx ? dx + off : nullptr,
                                          l.span);
    }
  });
  for (int64_t m = 0; m < l.entries; ++m) {
    double s = 0;
    for (int64_t n = 0; n < l.batch; ++n) s += partial[n * l.entries + m];
    da[m] = static_cast<T>(s);
  }
}

// y for contiguous x and a (no autograd bookkeeping).
inline torch::Tensor fused_forward(const torch::Tensor& x, const torch::Tensor& a) {
  const gate_layout l = layout_of(x, a.numel());
  torch::Tensor y = torch::empty_like(x, torch::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "linearize_masked_relu_forward", [&] {
    forward_pass(x.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), l);
  });
  return y;
}

// Autograd wrapper around the fused CPU passes. Inputs: x (any shape, batch first), gate (flat
// [M]). The gate's gradient is computed only when the gate requires it (soft masks).
struct fused_masked_relu : torch::autograd::Function<fused_masked_relu> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& gate_in) {
    const torch::Tensor x = x_in.contiguous();
    const torch::Tensor a = gate_in.contiguous();
    ctx->save_for_backward({x, a});
    return fused_forward(x, a);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& a = saved[1];
    const torch::Tensor g = grads[0].contiguous();
    const bool want_dx = ctx->needs_input_grad(0), want_da = ctx->needs_input_grad(1);
    torch::Tensor dx, da;
    if (want_dx) dx = torch::empty_like(x);
    if (want_da) da = torch::empty_like(a);
    if (want_dx || want_da) {
      const gate_layout l = layout_of(x, a.numel());
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "linearize_masked_relu_backward", [&] {
        backward_pass(g.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(),
                 want_dx ? dx.data_ptr<scalar_t>() : nullptr,
                 want_da ? da.data_ptr<scalar_t>() : nullptr, l);
      });
    }
    return {dx, da};
  }
};

// relu with the convention's slope 1 at x = 0 (a fully kept slot): the forward is torch::relu's
// own kernel, the backward one pass, dx = 0 where x < 0 and g elsewhere (NaN included).
struct fused_relu : torch::autograd::Function<fused_relu> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    return torch::relu(x);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const torch::Tensor x = ctx->get_saved_variables()[0].contiguous();
    const torch::Tensor g = grads[0].contiguous();
    torch::Tensor dx = torch::empty_like(x, torch::MemoryFormat::Contiguous);
    const gate_layout l{1, 1, x.numel()};
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "linearize_relu_backward", [&] {
      using Vec = at::vec::Vectorized<scalar_t>;
      const scalar_t* gp = g.data_ptr<scalar_t>();
      const scalar_t* xp = x.data_ptr<scalar_t>();
      scalar_t* dp = dx.data_ptr<scalar_t>();
      const scalar_t one(1);
      for_each_span(l, &one, [gp, xp, dp](int64_t i, scalar_t, int64_t len) {
        const Vec zero(scalar_t(0));
        int64_t j = 0;
        for (; j + Vec::size() <= len; j += Vec::size()) {
          const Vec vg = Vec::loadu(gp + i + j);
          Vec::blendv(vg, zero, Vec::loadu(xp + i + j) < zero).store(dp + i + j);
        }
        for (; j < len; ++j) dp[i + j] = xp[i + j] < scalar_t(0) ? scalar_t(0) : gp[i + j];
      });
    });
    return {dx};
  }
};

}  // namespace detail

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/// y by the convention at the top of this file, gate broadcast as described there. Fused on
/// CPU float/double; plain ops elsewhere.
inline torch::Tensor masked_relu(const torch::Tensor& x, const torch::Tensor& gate) {
  require(gate.device() == x.device(), "masked ReLU: gate on ", gate.device(), " but input on ",
          x.device(), "; expected both on the same device");
  if (!fused_applies(x, gate)) return plain_masked_relu(x, gate);
  const bool track = torch::GradMode::is_enabled() && (x.requires_grad() || gate.requires_grad());
  // Inference (or frozen everything): skip the autograd node, its saved tensors and overhead.
  if (!track) return detail::fused_forward(x.contiguous(), gate.contiguous().reshape({-1}));
  return detail::fused_masked_relu::apply(x, gate.reshape({-1}));
}

/// The masked ReLU with every gate 1 (a fully kept slot), by the convention: relu's values, and
/// slope 1 at x = 0. The forward is torch::relu itself (what the slot ran before); with autograd
/// the backward is one fused pass on CPU float/double, plain ops elsewhere.
inline torch::Tensor relu(const torch::Tensor& x) {
  const bool track = torch::GradMode::is_enabled() && x.requires_grad();
  if (!track) return torch::relu(x);
  const bool fused = x.device().is_cpu() && (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble);
  if (!fused) return plain::relu_function::apply(x);
  return detail::fused_relu::apply(x);
}

}  // inline namespace LINEARIZE_KERNELS_ISA

}  // namespace linearize::kernels

#undef LINEARIZE_KERNELS_ISA
