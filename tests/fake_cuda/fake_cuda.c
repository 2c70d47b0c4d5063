/* A CUDA "device" for FakeTensorMode on a machine without a GPU (tests/fake_cuda/run.sh preloads it).

   torch's CUDA build asks the runtime how many devices there are, which is current, what it is and its stream
   priorities before the autograd engine, autocast, GradScaler and the CUDA RNG will handle even fake `cuda`
   tensors (pytorch issue 92627). This library answers those questions for one sm_90 device, and stands in for the
   driver (libcuda.so.1, its SONAME: torch's NVRTC stub links against it) with a primary context. Nothing here
   computes: any call that would touch a device goes to the real runtime, which finds no driver and fails, so a
   real tensor on "cuda" raises while fake ones trace. */
#include <string.h>
#include <cuda_runtime_api.h>

/* ----- the runtime's questions -------------------------------------------------------------------------------- */
cudaError_t cudaGetDeviceCount(int *count) { *count = 1; return cudaSuccess; }
cudaError_t cudaGetDevice(int *device) { *device = 0; return cudaSuccess; }
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
cudaError_t cudaDriverGetVersion(int *version) { *version = 13000; return cudaSuccess; }
cudaError_t cudaDeviceGetStreamPriorityRange(int *least, int *greatest) {
  if (least) *least = 0;
  if (greatest) *greatest = -5;
  return cudaSuccess;
}
static void describe(struct cudaDeviceProp *prop) {
  memset(prop, 0, sizeof *prop);
  strcpy(prop->name, "fake cuda device (no GPU)");
  prop->major = 9; prop->minor = 0;  /* sm_90: bf16 supported */
  prop->totalGlobalMem = 80ull << 30;
  prop->multiProcessorCount = 132;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->sharedMemPerBlock = 48 << 10;
  prop->sharedMemPerBlockOptin = 227 << 10;
  prop->regsPerBlock = 65536;
  prop->l2CacheSize = 50 << 20;
  prop->memoryBusWidth = 5120;
  prop->maxThreadsDim[0] = 1024; prop->maxThreadsDim[1] = 1024; prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647; prop->maxGridSize[1] = 65535; prop->maxGridSize[2] = 65535;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) { describe(prop); return cudaSuccess; }
cudaError_t cudaGetDeviceProperties_v2(struct cudaDeviceProp *prop, int device) { describe(prop); return cudaSuccess; }
cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device) {
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMultiProcessorCount: *value = 132; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    default: *value = 0;
  }
  return cudaSuccess;
}
/* the CUDA generator checks that no graph is being captured when it is seeded */
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus *status) {
  *status = cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
cudaError_t cudaStreamGetCaptureInfo(cudaStream_t stream, enum cudaStreamCaptureStatus *status,
                                     unsigned long long *id, cudaGraph_t *graph, const cudaGraphNode_t **nodes,
                                     const cudaGraphEdgeData **edges, size_t *count) {
  *status = cudaStreamCaptureStatusNone;
  if (id) *id = 0;
  if (count) *count = 0;
  return cudaSuccess;
}

/* ----- the driver (libcuda.so.1): a device with a primary context; everything else fails ---------------------- */
typedef int CUresult;
#define CUDA_ERROR_NO_DEVICE 100
CUresult cuInit(unsigned flags) { return 0; }
CUresult cuDriverGetVersion(int *version) { *version = 13000; return 0; }
CUresult cuDeviceGet(int *device, int ordinal) { *device = ordinal; return ordinal == 0 ? 0 : CUDA_ERROR_NO_DEVICE; }
CUresult cuDeviceGetCount(int *count) { *count = 1; return 0; }
CUresult cuDevicePrimaryCtxGetState(int device, unsigned *flags, int *active) { *flags = 0; *active = 1; return 0; }
CUresult cuDevicePrimaryCtxRetain(void **context, int device) { *context = (void *)0x1; return 0; }
CUresult cuCtxGetCurrent(void **context) { *context = (void *)0x1; return 0; }
CUresult cuCtxSetCurrent(void *context) { return 0; }
CUresult cuGetErrorString(CUresult error, const char **text) { *text = "fake CUDA device: no GPU"; return 0; }
#define NO_DEVICE(name) CUresult name() { return CUDA_ERROR_NO_DEVICE; }
NO_DEVICE(cuDeviceGetAttribute) NO_DEVICE(cuFuncGetAttribute) NO_DEVICE(cuFuncSetAttribute)
NO_DEVICE(cuFuncSetCacheConfig) NO_DEVICE(cuLaunchCooperativeKernel) NO_DEVICE(cuLaunchKernel)
NO_DEVICE(cuLinkAddData_v2) NO_DEVICE(cuLinkComplete) NO_DEVICE(cuLinkCreate_v2) NO_DEVICE(cuModuleGetFunction)
NO_DEVICE(cuModuleLoad) NO_DEVICE(cuModuleLoadData) NO_DEVICE(cuModuleLoadDataEx) NO_DEVICE(cuModuleUnload)
NO_DEVICE(cuOccupancyMaxActiveBlocksPerMultiprocessor) NO_DEVICE(cuPointerGetAttribute)
NO_DEVICE(cuTensorMapEncodeTiled) NO_DEVICE(cuGetProcAddress) NO_DEVICE(cuGetProcAddress_v2)
