// Entry point of the addon: exports the convolution and elementwise kernels plus version info.
#include <omp.h>

#include "common.h"

namespace onednn_addon {

dnnl::engine &cpuEngine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream &cpuStream() {
  static dnnl::stream stream(cpuEngine());
  return stream;
}

static Napi::Value info(const Napi::CallbackInfo &info) {
  auto env = info.Env();
  const dnnl_version_t *v = dnnl_version();
  auto out = Napi::Object::New(env);
  out.Set("dnnlVersion", std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch));
  // The headers compiled against (which API conv.cc uses) beside the library loaded at run time.
  out.Set("headerVersion", std::to_string(DNNL_VERSION_MAJOR) + "." + std::to_string(DNNL_VERSION_MINOR) + "." +
                               std::to_string(DNNL_VERSION_PATCH));
  out.Set("cpuRuntime", v->cpu_runtime == DNNL_RUNTIME_OMP ? "omp" : "other");
  out.Set("threads", omp_get_max_threads());
  return out;
}

static Napi::Object init(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, info));
  initConv(env, exports);
  initElementwise(env, exports);
  initBatchNorm(env, exports);
  initOptimizer(env, exports);
  return exports;
}

}  // namespace onednn_addon

static Napi::Object Init(Napi::Env env, Napi::Object exports) { return onednn_addon::init(env, exports); }

NODE_API_MODULE(onednn, Init)
