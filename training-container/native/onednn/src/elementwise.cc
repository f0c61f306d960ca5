// Elementwise work that dominates a training step once convolutions are native: broadcasting
// binary ops, unary maps and axis reductions. Plain OpenMP loops rather than oneDNN primitives:
// tfjs hands over arbitrary broadcast patterns, and one loop nest over a collapsed shape covers
// them all without building a primitive per shape.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "common.h"
#include "fastmath.h"

namespace onednn_addon {
namespace {

// Below this many elements a parallel region costs more than it saves (a fork/join is microseconds
// on an idle machine, far more when the cores are shared).
constexpr int64_t kParallelMin = 1 << 15;

enum BinaryOp { kAdd = 0, kSub, kMul, kDiv, kSquaredDiff, kMax, kMin, kTwiceMul, kSwishGrad };
enum UnaryOp { kSigmoid = 0, kSqrt, kSquare, kRsqrt, kExp, kNeg, kRelu, kLog, kAbs, kReciprocal, kSwish };

template <int Op>
inline float apply(float a, float b) {
  if constexpr (Op == kAdd) return a + b;
  if constexpr (Op == kSub) return a - b;
  if constexpr (Op == kMul) return a * b;
  if constexpr (Op == kDiv) return a / b;
  if constexpr (Op == kSquaredDiff) return (a - b) * (a - b);
  if constexpr (Op == kMax) return a > b ? a : b;
  if constexpr (Op == kMin) return a < b ? a : b;
  if constexpr (Op == kTwiceMul) return 2.f * a * b;  // the gradient of Square
  if constexpr (Op == kSwishGrad) {                    // a = dy, b = x
    const float s = fastSigmoid(b);
    return a * s * (1.f + b * (1.f - s));
  }
}

// out[idx] = a[idx . aStrides] (op) b[idx . bStrides] over an already collapsed shape whose last
// dim has stride 0 or 1 in each input.
template <int Op>
ONEDNN_SIMD_CLONES void binaryLoop(const float *a, const float *b, float *out, const std::vector<int64_t> &dims,
                const std::vector<int64_t> &as, const std::vector<int64_t> &bs) {
  const int nd = int(dims.size());
  const int64_t inner = dims[nd - 1];
  const int64_t ai = as[nd - 1], bi = bs[nd - 1];
  int64_t rows = 1;
  for (int d = 0; d < nd - 1; d++) rows *= dims[d];
#pragma omp parallel if (rows * inner >= kParallelMin)
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    std::vector<int64_t> idx(nd, 0);
    int64_t rem = r0, aOff = 0, bOff = 0;
    for (int d = nd - 2; d >= 0; d--) {
      idx[d] = rem % dims[d];
      rem /= dims[d];
      aOff += idx[d] * as[d];
      bOff += idx[d] * bs[d];
    }
    for (int64_t r = r0; r < r1; r++) {
      float *o = out + r * inner;
      const float *pa = a + aOff, *pb = b + bOff;
      if (ai == 1 && bi == 1) {
#pragma omp simd
        for (int64_t i = 0; i < inner; i++) o[i] = apply<Op>(pa[i], pb[i]);
      } else if (ai == 1) {
        const float vb = pb[0];
#pragma omp simd
        for (int64_t i = 0; i < inner; i++) o[i] = apply<Op>(pa[i], vb);
      } else if (bi == 1) {
        const float va = pa[0];
#pragma omp simd
        for (int64_t i = 0; i < inner; i++) o[i] = apply<Op>(va, pb[i]);
      } else {
        for (int64_t i = 0; i < inner; i++) o[i] = apply<Op>(pa[0], pb[0]);
      }
      // odometer step over the outer dims
      for (int d = nd - 2; d >= 0; d--) {
        aOff += as[d];
        bOff += bs[d];
        if (++idx[d] < dims[d]) break;
        aOff -= as[d] * dims[d];
        bOff -= bs[d] * dims[d];
        idx[d] = 0;
      }
    }
  }
}

std::vector<int64_t> int32Vector(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (i >= info.Length() || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an Int32Array");
  }
  auto arr = info[i].As<Napi::Int32Array>();
  return std::vector<int64_t>(arr.Data(), arr.Data() + arr.ElementLength());
}

int64_t reach(const std::vector<int64_t> &dims, const std::vector<int64_t> &strides) {
  int64_t last = 0;
  for (size_t d = 0; d < dims.size(); d++) last += (dims[d] - 1) * strides[d];
  return last + 1;
}

// binary(op, a, b, out, dims, aStrides, bStrides)
Napi::Value binary(const Napi::CallbackInfo &info) {
  const int64_t op = intArg(info, 0, "op");
  const auto dims = int32Vector(info, 4, "dims");
  const auto as = int32Vector(info, 5, "aStrides");
  const auto bs = int32Vector(info, 6, "bStrides");
  if (dims.empty() || dims.size() != as.size() || dims.size() != bs.size()) {
    throw Napi::RangeError::New(info.Env(), "dims and strides must have the same, non-zero length");
  }
  int64_t total = 1;
  for (int64_t d : dims) total *= d;
  const float *a = f32Arg(info, 1, reach(dims, as), "a");
  const float *b = f32Arg(info, 2, reach(dims, bs), "b");
  float *out = f32Arg(info, 3, total, "out");
  switch (op) {
    case kAdd: binaryLoop<kAdd>(a, b, out, dims, as, bs); break;
    case kSub: binaryLoop<kSub>(a, b, out, dims, as, bs); break;
    case kMul: binaryLoop<kMul>(a, b, out, dims, as, bs); break;
    case kDiv: binaryLoop<kDiv>(a, b, out, dims, as, bs); break;
    case kSquaredDiff: binaryLoop<kSquaredDiff>(a, b, out, dims, as, bs); break;
    case kMax: binaryLoop<kMax>(a, b, out, dims, as, bs); break;
    case kMin: binaryLoop<kMin>(a, b, out, dims, as, bs); break;
    case kTwiceMul: binaryLoop<kTwiceMul>(a, b, out, dims, as, bs); break;
    case kSwishGrad: binaryLoop<kSwishGrad>(a, b, out, dims, as, bs); break;
    default: throw Napi::RangeError::New(info.Env(), "unknown binary op");
  }
  return info.Env().Undefined();
}

template <int Op>
inline float unaryApply(float x) {
  if constexpr (Op == kSigmoid) return fastSigmoid(x);
  if constexpr (Op == kSqrt) return std::sqrt(x);
  if constexpr (Op == kSquare) return x * x;
  if constexpr (Op == kRsqrt) return 1.f / std::sqrt(x);
  if constexpr (Op == kExp) return std::exp(x);
  if constexpr (Op == kNeg) return -x;
  if constexpr (Op == kRelu) return x > 0.f ? x : 0.f;
  if constexpr (Op == kLog) return std::log(x);
  if constexpr (Op == kAbs) return std::fabs(x);
  if constexpr (Op == kReciprocal) return 1.f / x;
  if constexpr (Op == kSwish) return x * fastSigmoid(x);
}

template <int Op>
ONEDNN_SIMD_CLONES void unaryLoop(const float *x, float *y, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) y[i] = unaryApply<Op>(x[i]);
}

// unary(op, x, y, n)
Napi::Value unary(const Napi::CallbackInfo &info) {
  const int64_t op = intArg(info, 0, "op");
  const int64_t n = intArg(info, 3, "n");
  const float *x = f32Arg(info, 1, n, "x");
  float *y = f32Arg(info, 2, n, "y");
  switch (op) {
    case kSigmoid: unaryLoop<kSigmoid>(x, y, n); break;
    case kSqrt: unaryLoop<kSqrt>(x, y, n); break;
    case kSquare: unaryLoop<kSquare>(x, y, n); break;
    case kRsqrt: unaryLoop<kRsqrt>(x, y, n); break;
    case kExp: unaryLoop<kExp>(x, y, n); break;
    case kNeg: unaryLoop<kNeg>(x, y, n); break;
    case kRelu: unaryLoop<kRelu>(x, y, n); break;
    case kLog: unaryLoop<kLog>(x, y, n); break;
    case kAbs: unaryLoop<kAbs>(x, y, n); break;
    case kReciprocal: unaryLoop<kReciprocal>(x, y, n); break;
    case kSwish: unaryLoop<kSwish>(x, y, n); break;
    default: throw Napi::RangeError::New(info.Env(), "unknown unary op");
  }
  return info.Env().Undefined();
}

enum ReduceOp { kSum = 0, kMean, kMaxReduce };

// out[o, i] = reduce_r x[o, r, i]; sums accumulate in double like tfjs's JavaScript loops.
// reduce(op, x, out, outer, r, inner)
Napi::Value reduce(const Napi::CallbackInfo &info) {
  const int64_t op = intArg(info, 0, "op");
  const int64_t O = intArg(info, 3, "outer"), R = intArg(info, 4, "reduced"), I = intArg(info, 5, "inner");
  if (O < 1 || R < 1 || I < 1 || op < kSum || op > kMaxReduce) throw Napi::RangeError::New(info.Env(), "bad reduce");
  const float *x = f32Arg(info, 1, O * R * I, "x");
  float *out = f32Arg(info, 2, O * I, "out");
  const bool isMax = op == kMaxReduce;
  const double scale = op == kMean ? 1.0 / double(R) : 1.0;
  if (I == 1) {
    // contiguous rows: one dot-like loop per output
#pragma omp parallel for schedule(static) if (O * R >= kParallelMin)
    for (int64_t o = 0; o < O; o++) {
      const float *row = x + o * R;
      if (isMax) {
        float m = row[0];
        for (int64_t r = 1; r < R; r++) m = row[r] > m ? row[r] : m;
        out[o] = m;
      } else {
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t r = 0; r < R; r++) s += row[r];
        out[o] = float(s * scale);
      }
    }
    return info.Env().Undefined();
  }
  // columns: each thread accumulates a slice of r into its own buffer, then buffers are combined
  for (int64_t o = 0; o < O; o++) {
    const float *base = x + o * R * I;
    const int nt = omp_get_max_threads();
    std::vector<double> partial(size_t(nt) * I, 0.0);
    std::vector<float> partialMax(isMax ? size_t(nt) * I : 0, -INFINITY);
#pragma omp parallel if (R * I >= kParallelMin)
    {
      const int t = omp_get_thread_num(), n = omp_get_num_threads();
      const int64_t r0 = R * t / n, r1 = R * (t + 1) / n;
      if (isMax) {
        float *acc = partialMax.data() + size_t(t) * I;
        for (int64_t r = r0; r < r1; r++) {
          const float *row = base + r * I;
          for (int64_t i = 0; i < I; i++) acc[i] = row[i] > acc[i] ? row[i] : acc[i];
        }
      } else {
        double *acc = partial.data() + size_t(t) * I;
        for (int64_t r = r0; r < r1; r++) {
          const float *row = base + r * I;
#pragma omp simd
          for (int64_t i = 0; i < I; i++) acc[i] += row[i];
        }
      }
    }
    float *dst = out + o * I;
    for (int64_t i = 0; i < I; i++) {
      if (isMax) {
        float m = -INFINITY;
        for (int t = 0; t < nt; t++) m = partialMax[size_t(t) * I + i] > m ? partialMax[size_t(t) * I + i] : m;
        dst[i] = m;
      } else {
        double s = 0;
        for (int t = 0; t < nt; t++) s += partial[size_t(t) * I + i];
        dst[i] = float(s * scale);
      }
    }
  }
  return info.Env().Undefined();
}

// stridedCopy(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, dims): copies the block
// `dims` (last dim contiguous in both) from src to dst, each addressed by offset + idx . strides.
// Slice and PadV2 are this copy; tfjs's cpu kernels walk element by element.
Napi::Value stridedCopy(const Napi::CallbackInfo &info) {
  const auto dims = int32Vector(info, 6, "dims");
  const auto ss = int32Vector(info, 2, "srcStrides");
  const auto ds = int32Vector(info, 5, "dstStrides");
  const int64_t srcOff = intArg(info, 1, "srcOffset"), dstOff = intArg(info, 4, "dstOffset");
  const int nd = int(dims.size());
  if (nd == 0 || int(ss.size()) != nd || int(ds.size()) != nd || ss[nd - 1] != 1 || ds[nd - 1] != 1 || srcOff < 0 ||
      dstOff < 0) {
    throw Napi::RangeError::New(info.Env(), "stridedCopy: bad dims, strides or offsets");
  }
  for (int64_t d : dims)
    if (d < 1) return info.Env().Undefined();
  const float *src = f32Arg(info, 0, srcOff + reach(dims, ss), "src");
  float *dst = f32Arg(info, 3, dstOff + reach(dims, ds), "dst");
  const int64_t inner = dims[nd - 1];
  int64_t rows = 1;
  for (int d = 0; d < nd - 1; d++) rows *= dims[d];
#pragma omp parallel for schedule(static) if (rows * inner >= kParallelMin)
  for (int64_t r = 0; r < rows; r++) {
    int64_t rem = r, so = srcOff, dO = dstOff;
    for (int d = nd - 2; d >= 0; d--) {
      const int64_t i = rem % dims[d];
      rem /= dims[d];
      so += i * ss[d];
      dO += i * ds[d];
    }
    std::memcpy(dst + dO, src + so, size_t(inner) * sizeof(float));
  }
  return info.Env().Undefined();
}

// fill(dst, value, n)
Napi::Value fill(const Napi::CallbackInfo &info) {
  const int64_t n = intArg(info, 2, "n");
  float *dst = f32Arg(info, 0, n, "dst");
  const float v = float(info[1].As<Napi::Number>().DoubleValue());
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) dst[i] = v;
  return info.Env().Undefined();
}

}  // namespace

void initElementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("binary", Napi::Function::New(env, binary));
  exports.Set("unary", Napi::Function::New(env, unary));
  exports.Set("reduce", Napi::Function::New(env, reduce));
  exports.Set("stridedCopy", Napi::Function::New(env, stridedCopy));
  exports.Set("fill", Napi::Function::New(env, fill));
}

}  // namespace onednn_addon
