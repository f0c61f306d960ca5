// Adam's update of one variable in one pass. tfjs's AdamOptimizer spends about a dozen tensor ops
// per variable (each a full pass plus kernel glue): 213 variables and 4M parameters in B0.
#include <omp.h>

#include <cmath>

#include "common.h"
#include "fastmath.h"

namespace onednn_addon {
namespace {

constexpr int64_t kParallelMin = 1 << 15;

ONEDNN_SIMD_CLONES void adamLoop(const float *value, const float *g, const float *m, const float *v, int64_t n,
                                 float lr, float b1, float b2, float d1, float d2, float eps, float c1, float c2,
                                 float *outValue, float *outM, float *outV) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    // The order of operations follows tfjs's AdamOptimizer so float32 results agree closely.
    const float m1 = m[i] * b1 + g[i] * d1;
    const float v1 = v[i] * b2 + (g[i] * g[i]) * d2;
    outM[i] = m1;
    outV[i] = v1;
    outValue[i] = (m1 / c1) / (std::sqrt(v1 / c2) + eps) * -lr + value[i];
  }
}

// adamUpdate(value, gradient, m, v, n, learningRate, beta1, beta2, oneMinusBeta1, oneMinusBeta2,
//            epsilon, oneMinusAccBeta1, oneMinusAccBeta2, outValue, outM, outV)
// The 1 - x factors come rounded by the caller: tfjs rounds them to float32 from doubles, and
// 1.f - 0.999f differs from that by 5e-5 relative.
Napi::Value adamUpdate(const Napi::CallbackInfo &info) {
  const int64_t n = intArg(info, 4, "n");
  const float *value = f32Arg(info, 0, n, "value");
  const float *g = f32Arg(info, 1, n, "gradient");
  const float *m = f32Arg(info, 2, n, "m");
  const float *v = f32Arg(info, 3, n, "v");
  auto num = [&](size_t i) { return float(info[i].As<Napi::Number>().DoubleValue()); };
  float *outValue = f32Arg(info, 13, n, "outValue");
  float *outM = f32Arg(info, 14, n, "outM");
  float *outV = f32Arg(info, 15, n, "outV");
  adamLoop(value, g, m, v, n, num(5), num(6), num(7), num(8), num(9), num(10), num(11), num(12), outValue, outM,
           outV);
  return info.Env().Undefined();
}

}  // namespace

void initOptimizer(Napi::Env env, Napi::Object exports) {
  exports.Set("adamUpdate", Napi::Function::New(env, adamUpdate));
}

}  // namespace onednn_addon
