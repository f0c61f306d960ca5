// Batch normalisation over x's last axis (NHWC channels): tfjs's FusedBatchNorm (statistics given)
// and its gradient, and the model's batch-norm in training (statistics of the batch) and its
// gradient. Each is two passes at most; tfjs's own ops take about a dozen per layer.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "fastmath.h"

namespace onednn_addon {
namespace {

constexpr int64_t kParallelMin = 1 << 15;

// Optional per-channel Float32Array (scale/offset may be absent: null or undefined).
const float *optionalChannels(const Napi::CallbackInfo &info, size_t i, int64_t c, const char *name) {
  if (i < info.Length() && (info[i].IsNull() || info[i].IsUndefined())) return nullptr;
  return f32Arg(info, i, c, name);
}

// Per-channel sums over rows, one double accumulator row per thread, combined at the end.
// rowFn(row, acc0, acc1) adds row `row`'s contributions for every channel.
template <typename RowFn>
void channelSums(int64_t rows, int64_t c, std::vector<double> &s0, std::vector<double> &s1, RowFn rowFn) {
  const int nt = omp_get_max_threads();
  std::vector<double> p0(size_t(nt) * c, 0.0), p1(size_t(nt) * c, 0.0);
#pragma omp parallel if (rows * c >= kParallelMin)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t r0 = rows * t / n, r1 = rows * (t + 1) / n;
    double *a0 = p0.data() + size_t(t) * c, *a1 = p1.data() + size_t(t) * c;
    for (int64_t row = r0; row < r1; row++) rowFn(row, a0, a1);
  }
  s0.assign(c, 0.0);
  s1.assign(c, 0.0);
  for (int t = 0; t < nt; t++) {
    for (int64_t k = 0; k < c; k++) {
      s0[k] += p0[size_t(t) * c + k];
      s1[k] += p1[size_t(t) * c + k];
    }
  }
}

ONEDNN_SIMD_CLONES void trainingStats(const float *x, int64_t rows, int64_t c, std::vector<double> &sum,
                                      std::vector<double> &sumSq) {
  channelSums(rows, c, sum, sumSq, [&](int64_t row, double *s, double *q) {
    const float *xr = x + row * c;
#pragma omp simd
    for (int64_t k = 0; k < c; k++) {
      const double v = xr[k];
      s[k] += v;
      q[k] += v * v;
    }
  });
}

ONEDNN_SIMD_CLONES void affine(const float *x, const float *a, const float *b, int64_t rows, int64_t c, float *y) {
#pragma omp parallel for schedule(static) if (rows * c >= kParallelMin)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * c;
    float *yr = y + r * c;
#pragma omp simd
    for (int64_t k = 0; k < c; k++) yr[k] = xr[k] * a[k] + b[k];
  }
}

ONEDNN_SIMD_CLONES void gradSums(const float *x, const float *dy, const float *mean, int64_t rows,
                                 int64_t c, std::vector<double> &sumDy, std::vector<double> &sumDyXc) {
  channelSums(rows, c, sumDy, sumDyXc, [&](int64_t row, double *sd, double *sdx) {
    const float *xr = x + row * c;
    const float *dyr = dy + row * c;
#pragma omp simd
    for (int64_t k = 0; k < c; k++) {
      sd[k] += dyr[k];
      sdx[k] += double(dyr[k]) * double(xr[k] - mean[k]);
    }
  });
}

// The arguments both gradients start with: (x, dy, mean, variance, scale|null, epsilon, rows,
// channels, dx, ...).
struct GradArgs {
  int64_t rows, c;
  const float *x, *dy, *mean, *var, *scale;
  float eps;
  float *dx;
  explicit GradArgs(const Napi::CallbackInfo &info)
      : rows(intArg(info, 6, "rows")),
        c(intArg(info, 7, "channels")),
        x(f32Arg(info, 0, rows * c, "x")),
        dy(f32Arg(info, 1, rows * c, "dy")),
        mean(f32Arg(info, 2, c, "mean")),
        var(f32Arg(info, 3, c, "variance")),
        scale(optionalChannels(info, 4, c, "scale")),
        eps(float(info[5].As<Napi::Number>().DoubleValue())),
        dx(f32Arg(info, 8, rows * c, "dx")) {}
};

// batchNormForward(x, mean, variance, scale|null, offset|null, epsilon, rows, channels, y)
Napi::Value forward(const Napi::CallbackInfo &info) {
  const int64_t rows = intArg(info, 6, "rows"), c = intArg(info, 7, "channels");
  const float *x = f32Arg(info, 0, rows * c, "x");
  const float *mean = f32Arg(info, 1, c, "mean");
  const float *var = f32Arg(info, 2, c, "variance");
  const float *scale = optionalChannels(info, 3, c, "scale");
  const float *offset = optionalChannels(info, 4, c, "offset");
  const float eps = float(info[5].As<Napi::Number>().DoubleValue());
  float *y = f32Arg(info, 8, rows * c, "y");
  std::vector<float> a(c), b(c);  // y = x * a + b
  for (int64_t k = 0; k < c; k++) {
    const float r = 1.f / std::sqrt(var[k] + eps);
    a[k] = r * (scale ? scale[k] : 1.f);
    b[k] = (offset ? offset[k] : 0.f) - mean[k] * a[k];
  }
  affine(x, a.data(), b.data(), rows, c, y);
  return info.Env().Undefined();
}

// batchNormBackward(x, dy, mean, variance, scale|null, epsilon, rows, channels,
//                   dx, dMean, dVariance, dScale, dOffset)
// With r = 1/sqrt(var + eps) and s the scale (1 when absent), y = (x - mean) * r * s + offset:
//   dx = dy * r * s                     dOffset = sum dy
//   dScale = r * sum dy (x - mean)      dMean = -r * s * sum dy
//   dVariance = -0.5 * r^3 * s * sum dy (x - mean)
Napi::Value backward(const Napi::CallbackInfo &info) {
  const GradArgs g(info);
  const int64_t rows = g.rows, c = g.c;
  const float *x = g.x, *dy = g.dy, *mean = g.mean, *var = g.var, *scale = g.scale;
  const float eps = g.eps;
  float *dx = g.dx;
  float *dMean = f32Arg(info, 9, c, "dMean");
  float *dVar = f32Arg(info, 10, c, "dVariance");
  float *dScale = f32Arg(info, 11, c, "dScale");
  float *dOffset = f32Arg(info, 12, c, "dOffset");
  std::vector<double> sumDy, sumDyXc;
  gradSums(x, dy, mean, rows, c, sumDy, sumDyXc);
  std::vector<float> rs(c), zero(c, 0.f);
  for (int64_t k = 0; k < c; k++) {
    const double r = 1.0 / std::sqrt(double(var[k]) + eps);
    const double s = scale ? scale[k] : 1.0;
    rs[k] = float(r * s);
    dOffset[k] = float(sumDy[k]);
    dScale[k] = float(r * sumDyXc[k]);
    dMean[k] = float(-r * s * sumDy[k]);
    dVar[k] = float(-0.5 * r * r * r * s * sumDyXc[k]);
  }
  affine(dy, rs.data(), zero.data(), rows, c, dx);
  return info.Env().Undefined();
}

// batchNormTrainingForward(x, scale|null, offset|null, epsilon, rows, channels, y, mean, variance)
// Batch-norm in training: the batch's per-channel mean and (biased) variance, as tf.moments gives
// them, and y = (x - mean) / sqrt(variance + epsilon) * scale + offset. Two passes over x where
// tfjs-layers' moments + batchNorm take six, and their gradients more.
Napi::Value trainingForward(const Napi::CallbackInfo &info) {
  const int64_t rows = intArg(info, 4, "rows"), c = intArg(info, 5, "channels");
  const float *x = f32Arg(info, 0, rows * c, "x");
  const float *scale = optionalChannels(info, 1, c, "scale");
  const float *offset = optionalChannels(info, 2, c, "offset");
  const float eps = float(info[3].As<Napi::Number>().DoubleValue());
  float *y = f32Arg(info, 6, rows * c, "y");
  float *mean = f32Arg(info, 7, c, "mean");
  float *var = f32Arg(info, 8, c, "variance");
  if (rows < 1) throw Napi::RangeError::New(info.Env(), "batch-norm needs at least one row");
  std::vector<double> sum, sumSq;
  trainingStats(x, rows, c, sum, sumSq);
  std::vector<float> a(c), b(c);  // y = x * a + b
  for (int64_t k = 0; k < c; k++) {
    const double m = sum[k] / double(rows);
    const double v = std::max(0.0, sumSq[k] / double(rows) - m * m);
    mean[k] = float(m);
    var[k] = float(v);
    const float r = 1.f / std::sqrt(var[k] + eps);
    a[k] = r * (scale ? scale[k] : 1.f);
    b[k] = (offset ? offset[k] : 0.f) - mean[k] * a[k];
  }
  affine(x, a.data(), b.data(), rows, c, y);
  return info.Env().Undefined();
}

// dx = a * dy + b * x + d per channel
ONEDNN_SIMD_CLONES void trainingGradDx(const float *x, const float *dy, const float *a, const float *b,
                                       const float *d, int64_t rows, int64_t c, float *dx) {
#pragma omp parallel for schedule(static) if (rows * c >= kParallelMin)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * c;
    const float *dyr = dy + r * c;
    float *dxr = dx + r * c;
#pragma omp simd
    for (int64_t k = 0; k < c; k++) dxr[k] = a[k] * dyr[k] + b[k] * xr[k] + d[k];
  }
}

// batchNormTrainingBackward(x, dy, mean, variance, scale|null, epsilon, rows, channels,
//                           dx, dScale, dOffset)
// The gradient through the batch statistics too (mean and variance depend on x). With
// r = 1/sqrt(var + eps), xhat = (x - mean) r, s the scale and N the rows:
//   dOffset = sum dy        dScale = sum dy xhat
//   dx = s r / N (N dy - dOffset - xhat dScale)
Napi::Value trainingBackward(const Napi::CallbackInfo &info) {
  const GradArgs g(info);
  const int64_t rows = g.rows, c = g.c;
  const float *x = g.x, *dy = g.dy, *mean = g.mean, *var = g.var, *scale = g.scale;
  const float eps = g.eps;
  float *dx = g.dx;
  float *dScale = f32Arg(info, 9, c, "dScale");
  float *dOffset = f32Arg(info, 10, c, "dOffset");
  std::vector<double> sumDy, sumDyXc;
  gradSums(x, dy, mean, rows, c, sumDy, sumDyXc);
  // dx = a dy + b x + d with a = s r, b = -s r^3 sumDyXc / N, d = -a sumDy / N - b mean
  std::vector<float> a(c), b(c), d(c);
  const double n = double(rows);
  for (int64_t k = 0; k < c; k++) {
    const double r = 1.0 / std::sqrt(double(var[k]) + eps);
    const double s = scale ? scale[k] : 1.0;
    dOffset[k] = float(sumDy[k]);
    dScale[k] = float(sumDyXc[k] * r);
    const double ak = s * r, bk = -s * r * r * r * sumDyXc[k] / n;
    a[k] = float(ak);
    b[k] = float(bk);
    d[k] = float(-ak * sumDy[k] / n - bk * mean[k]);
  }
  trainingGradDx(x, dy, a.data(), b.data(), d.data(), rows, c, dx);
  return info.Env().Undefined();
}

// sigmoidGrad(dy, y, dx, n): dx = dy * y * (1 - y), the whole of tfjs's three-op sigmoid gradient.
Napi::Value sigmoidGrad(const Napi::CallbackInfo &info) {
  const int64_t n = intArg(info, 3, "n");
  const float *dy = f32Arg(info, 0, n, "dy");
  const float *y = f32Arg(info, 1, n, "y");
  float *dx = f32Arg(info, 2, n, "dx");
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.f - y[i]);
  return info.Env().Undefined();
}

}  // namespace

void initBatchNorm(Napi::Env env, Napi::Object exports) {
  exports.Set("batchNormForward", Napi::Function::New(env, forward));
  exports.Set("batchNormBackward", Napi::Function::New(env, backward));
  exports.Set("batchNormTrainingForward", Napi::Function::New(env, trainingForward));
  exports.Set("batchNormTrainingBackward", Napi::Function::New(env, trainingBackward));
  exports.Set("sigmoidGrad", Napi::Function::New(env, sigmoidGrad));
}

}  // namespace onednn_addon
