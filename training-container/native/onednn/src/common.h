// Shared helpers for the addon: one oneDNN CPU engine/stream and argument checks.
#pragma once
#include <napi.h>

#include <oneapi/dnnl/dnnl.hpp>

namespace onednn_addon {

dnnl::engine &cpuEngine();
dnnl::stream &cpuStream();

// The Float32Array's own storage: tfjs tensors are passed without copying.
inline float *f32Arg(const Napi::CallbackInfo &info, size_t i, size_t minLength, const char *name) {
  if (i >= info.Length() || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Float32Array");
  }
  auto arr = info[i].As<Napi::Float32Array>();
  if (arr.ElementLength() < minLength) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + " has " + std::to_string(arr.ElementLength()) +
                                                " elements, needs " + std::to_string(minLength));
  }
  return arr.Data();
}

inline int64_t intArg(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (i >= info.Length() || !info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  }
  return info[i].As<Napi::Number>().Int64Value();
}

void initConv(Napi::Env env, Napi::Object exports);
void initElementwise(Napi::Env env, Napi::Object exports);
void initBatchNorm(Napi::Env env, Napi::Object exports);
void initOptimizer(Napi::Env env, Napi::Object exports);

}  // namespace onednn_addon
