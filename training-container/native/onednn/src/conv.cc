// tfjs Conv2D / Conv2DBackpropInput / Conv2DBackpropFilter and the DepthwiseConv2dNative* trio on
// oneDNN convolution primitives, 2.x or 3.x. The two differ only in how a primitive descriptor is
// made: 2.x builds an operation descriptor first (Debian 12 ships 2.6.3), 3.x removed those and
// takes the same arguments in the primitive descriptor's constructor (the first*Pd functions).
//
// Activations are NHWC as tfjs stores them; filters keep tfjs's layout ([kh, kw, in, out], or
// [kh, kw, in, multiplier] for depthwise = a grouped convolution with groups = in) and are
// reordered into whatever blocked layout the chosen implementation wants. Primitives are cached
// by shape, so a training step only pays for creation on its first run.
#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_map>

#include "common.h"

namespace onednn_addon {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

// oneDNN 3.x lists its brgemm-based convolutions first ("brg_conv_fwd", "brgconv_1x1",
// "brdgmm_dw"); on the project's AVX2 machine they trained the quick model 10 % slower than the
// jit kernels 2.x picks for the same shapes (docs/onednn.md). So the first implementation whose
// name does not start with "brg"/"brdgmm" is taken when there is one: both versions then run the
// same kernels. BRAIN_TUMOR_ONEDNN_BRGEMM=1 keeps oneDNN's own first choice.
bool keepBrgemm() {
  static const bool keep = [] {
    const char *v = std::getenv("BRAIN_TUMOR_ONEDNN_BRGEMM");
    return v != nullptr && std::string(v) == "1";
  }();
  return keep;
}

template <typename Make>
auto preferJit(Make make) -> decltype(make()) {
  auto pd = make();
  if (keepBrgemm()) return pd;
  do {
    const std::string impl = pd.impl_info_str();
    if (impl.rfind("brg", 0) != 0 && impl.rfind("brdgmm", 0) != 0) return pd;
  } while (pd.next_impl());
  return make();  // only brgemm kernels for this shape: the first, as oneDNN ranks them
}

// The 18 numbers the TypeScript side derives from tfjs's computeConv2DInfo.
struct ConvShape {
  int64_t n, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, g;

  static constexpr int kCount = 18;

  std::string key() const {
    std::string k;
    for (int64_t v : {n, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, g}) {
      k += std::to_string(v);
      k += ',';
    }
    return k;
  }
  size_t srcSize() const { return n * ih * iw * ic; }
  size_t dstSize() const { return n * oh * ow * oc; }
  size_t weightsSize() const { return kh * kw * (ic / g) * oc; }

  memory::desc src() const { return memory::desc({n, ic, ih, iw}, dt::f32, tag::nhwc); }
  memory::desc dst() const { return memory::desc({n, oc, oh, ow}, dt::f32, tag::nhwc); }
  memory::desc weightsAny() const {
    if (g == 1) return memory::desc({oc, ic, kh, kw}, dt::f32, tag::any);
    return memory::desc({g, oc / g, ic / g, kh, kw}, dt::f32, tag::any);
  }
  // tfjs's filter layout expressed as strides over oneDNN's logical weight dims.
  memory::desc weightsUser() const {
    if (g == 1) return memory::desc({oc, ic, kh, kw}, dt::f32, memory::dims{1, oc, kw * ic * oc, ic * oc});
    const int64_t m = oc / g;  // depthwise: ic / g == 1
    return memory::desc({g, m, 1, kh, kw}, dt::f32, memory::dims{m, 1, 1, kw * g * m, g * m});
  }
  memory::dims strides() const { return {sh, sw}; }
  memory::dims dilates() const { return {dh - 1, dw - 1}; }
  memory::dims padL() const { return {pt, pl}; }
  memory::dims padR() const { return {pb, pr}; }

  dnnl::convolution_forward::primitive_desc forwardPd() const {
    return preferJit([this] { return firstForwardPd(); });
  }
  dnnl::convolution_backward_data::primitive_desc backwardDataPd() const {
    return preferJit([this] { return firstBackwardDataPd(); });
  }
  dnnl::convolution_backward_weights::primitive_desc backwardWeightsPd() const {
    return preferJit([this] { return firstBackwardWeightsPd(); });
  }

  // The primitive descriptors as oneDNN ranks them: the only version-dependent code in the addon.
  dnnl::convolution_forward::primitive_desc firstForwardPd() const {
#if DNNL_VERSION_MAJOR >= 3
    return {cpuEngine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src(), weightsAny(),
            dst(), strides(), dilates(), padL(), padR()};
#else
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src(),
                                      weightsAny(), dst(), strides(), dilates(), padL(), padR());
    return {d, cpuEngine()};
#endif
  }

  dnnl::convolution_backward_data::primitive_desc firstBackwardDataPd() const {
#if DNNL_VERSION_MAJOR >= 3
    return {cpuEngine(), dnnl::algorithm::convolution_direct, src(), weightsAny(), dst(), strides(), dilates(),
            padL(), padR(), forwardPd()};
#else
    dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, src(), weightsAny(), dst(), strides(),
                                            dilates(), padL(), padR());
    return {d, cpuEngine(), forwardPd()};
#endif
  }

  dnnl::convolution_backward_weights::primitive_desc firstBackwardWeightsPd() const {
#if DNNL_VERSION_MAJOR >= 3
    return {cpuEngine(), dnnl::algorithm::convolution_direct, src(), weightsAny(), dst(), strides(), dilates(),
            padL(), padR(), forwardPd()};
#else
    dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, src(), weightsAny(), dst(),
                                               strides(), dilates(), padL(), padR());
    return {d, cpuEngine(), forwardPd()};
#endif
  }
};

ConvShape parseShape(const Napi::CallbackInfo &info, size_t i) {
  if (i >= info.Length() || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
      info[i].As<Napi::Int32Array>().ElementLength() != ConvShape::kCount) {
    throw Napi::TypeError::New(info.Env(), "conv shape must be an Int32Array of 18 numbers");
  }
  const int32_t *p = info[i].As<Napi::Int32Array>().Data();
  ConvShape s{p[0], p[1], p[2],  p[3],  p[4],  p[5],  p[6],  p[7],  p[8],
              p[9], p[10], p[11], p[12], p[13], p[14], p[15], p[16], p[17]};
  if (s.g != 1 && !(s.g == s.ic && s.oc % s.g == 0)) {
    throw Napi::RangeError::New(info.Env(), "only plain (groups=1) and depthwise (groups=in) convolutions");
  }
  return s;
}

// A weights reorder between tfjs's layout and the primitive's, skipped when they already match.
struct WeightsBridge {
  bool needed = false;
  memory internal;
  dnnl::reorder toInternal, toUser;

  void init(const ConvShape &s, const memory::desc &primDesc, bool userToPrim) {
    const memory::desc user = s.weightsUser();
    needed = primDesc != user;
    if (!needed) return;
    internal = memory(primDesc, cpuEngine());
    memory userMem(user, cpuEngine(), DNNL_MEMORY_NONE);
    if (userToPrim) toInternal = dnnl::reorder(userMem, internal);
    else toUser = dnnl::reorder(internal, userMem);
  }
};

struct Forward {
  dnnl::convolution_forward prim;
  WeightsBridge w;
};
struct BackwardData {
  dnnl::convolution_backward_data prim;
  WeightsBridge w;
};
struct BackwardWeights {
  dnnl::convolution_backward_weights prim;
  WeightsBridge w;
};

template <typename T>
using Cache = std::unordered_map<std::string, std::unique_ptr<T>>;
Cache<Forward> forwardCache;
Cache<BackwardData> backwardDataCache;
Cache<BackwardWeights> backwardWeightsCache;

Forward &forward(const ConvShape &s) {
  auto &slot = forwardCache[s.key()];
  if (!slot) {
    auto pd = s.forwardPd();
    slot = std::make_unique<Forward>(Forward{dnnl::convolution_forward(pd), {}});
    slot->w.init(s, pd.weights_desc(), true);
  }
  return *slot;
}

BackwardData &backwardData(const ConvShape &s) {
  auto &slot = backwardDataCache[s.key()];
  if (!slot) {
    const auto pd = s.backwardDataPd();
    slot = std::make_unique<BackwardData>(BackwardData{dnnl::convolution_backward_data(pd), {}});
    slot->w.init(s, pd.weights_desc(), true);
  }
  return *slot;
}

BackwardWeights &backwardWeights(const ConvShape &s) {
  auto &slot = backwardWeightsCache[s.key()];
  if (!slot) {
    const auto pd = s.backwardWeightsPd();
    slot = std::make_unique<BackwardWeights>(BackwardWeights{dnnl::convolution_backward_weights(pd), {}});
    slot->w.init(s, pd.diff_weights_desc(), false);
  }
  return *slot;
}

template <typename F>
Napi::Value guarded(const Napi::CallbackInfo &info, F body) {
  try {
    body();
  } catch (const dnnl::error &e) {
    throw Napi::Error::New(info.Env(), std::string("oneDNN: ") + e.what());
  }
  return info.Env().Undefined();
}

// conv2dForward(shape, x, w, y): y = conv(x, w)
Napi::Value conv2dForward(const Napi::CallbackInfo &info) {
  const ConvShape s = parseShape(info, 0);
  float *x = f32Arg(info, 1, s.srcSize(), "x");
  float *w = f32Arg(info, 2, s.weightsSize(), "filter");
  float *y = f32Arg(info, 3, s.dstSize(), "y");
  return guarded(info, [&] {
    Forward &f = forward(s);
    auto &eng = cpuEngine();
    auto &strm = cpuStream();
    memory wUser(s.weightsUser(), eng, w);
    if (f.w.needed) f.w.toInternal.execute(strm, wUser, f.w.internal);
    f.prim.execute(strm, {{DNNL_ARG_SRC, memory(s.src(), eng, x)},
                          {DNNL_ARG_WEIGHTS, f.w.needed ? f.w.internal : wUser},
                          {DNNL_ARG_DST, memory(s.dst(), eng, y)}});
    strm.wait();
  });
}

// conv2dBackwardData(shape, dy, w, dx): dx = d conv / d x
Napi::Value conv2dBackwardData(const Napi::CallbackInfo &info) {
  const ConvShape s = parseShape(info, 0);
  float *dy = f32Arg(info, 1, s.dstSize(), "dy");
  float *w = f32Arg(info, 2, s.weightsSize(), "filter");
  float *dx = f32Arg(info, 3, s.srcSize(), "dx");
  return guarded(info, [&] {
    BackwardData &b = backwardData(s);
    auto &eng = cpuEngine();
    auto &strm = cpuStream();
    memory wUser(s.weightsUser(), eng, w);
    if (b.w.needed) b.w.toInternal.execute(strm, wUser, b.w.internal);
    b.prim.execute(strm, {{DNNL_ARG_DIFF_DST, memory(s.dst(), eng, dy)},
                          {DNNL_ARG_WEIGHTS, b.w.needed ? b.w.internal : wUser},
                          {DNNL_ARG_DIFF_SRC, memory(s.src(), eng, dx)}});
    strm.wait();
  });
}

// conv2dBackwardWeights(shape, x, dy, dw): dw = d conv / d filter, in tfjs's filter layout
Napi::Value conv2dBackwardWeights(const Napi::CallbackInfo &info) {
  const ConvShape s = parseShape(info, 0);
  float *x = f32Arg(info, 1, s.srcSize(), "x");
  float *dy = f32Arg(info, 2, s.dstSize(), "dy");
  float *dw = f32Arg(info, 3, s.weightsSize(), "dw");
  return guarded(info, [&] {
    BackwardWeights &b = backwardWeights(s);
    auto &eng = cpuEngine();
    auto &strm = cpuStream();
    memory wUser(s.weightsUser(), eng, dw);
    b.prim.execute(strm, {{DNNL_ARG_SRC, memory(s.src(), eng, x)},
                          {DNNL_ARG_DIFF_DST, memory(s.dst(), eng, dy)},
                          {DNNL_ARG_DIFF_WEIGHTS, b.w.needed ? b.w.internal : wUser}});
    if (b.w.needed) b.w.toUser.execute(strm, b.w.internal, wUser);
    strm.wait();
  });
}

Napi::Value cacheSize(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(),
                           double(forwardCache.size() + backwardDataCache.size() + backwardWeightsCache.size()));
}

}  // namespace

void initConv(Napi::Env env, Napi::Object exports) {
  exports.Set("conv2dForward", Napi::Function::New(env, conv2dForward));
  exports.Set("conv2dBackwardData", Napi::Function::New(env, conv2dBackwardData));
  exports.Set("conv2dBackwardWeights", Napi::Function::New(env, conv2dBackwardWeights));
  exports.Set("convCacheSize", Napi::Function::New(env, cacheSize));
}

}  // namespace onednn_addon
