#include "secret/locked_memory.h"

#include <string.h>
#include <sys/mman.h>

#include <bitset>
#include <cstdlib>
#include <new>

#include <spdlog/spdlog.h>
#include <absl/synchronization/mutex.h>

namespace stormbroker {
namespace {

constexpr size_t kBlock = 32;
constexpr size_t kBlocks = 8192;  // 256 KiB: thousands of tokens, well under RLIMIT_MEMLOCK
constexpr size_t kRegion = kBlock * kBlocks;

class Arena {
 public:
  Arena() {
    void* region = mmap(nullptr, kRegion, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) {
      spdlog::warn("secret memory: cannot map a region ({}); secrets live on the heap", strerror(errno));
      return;
    }
    if (mlock(region, kRegion) != 0) {
      spdlog::warn("secret memory: cannot lock it into RAM ({}); it may be swapped out", strerror(errno));
    }
    madvise(region, kRegion, MADV_DONTDUMP);
    base_ = static_cast<char*>(region);
  }

  void* Allocate(size_t size) {
    size_t blocks = (size + kBlock - 1) / kBlock;
    absl::MutexLock lock(&mutex_);
    if (base_ && blocks <= kBlocks) {
      for (size_t start = 0; start + blocks <= kBlocks;) {
        size_t run = 0;
        while (run < blocks && !used_[start + run]) ++run;
        if (run == blocks) {
          for (size_t i = 0; i < blocks; ++i) used_[start + i] = true;
          return base_ + start * kBlock;
        }
        start += run + 1;
      }
    }
    if (!warned_full_) {
      warned_full_ = true;
      spdlog::warn("secret memory: the locked region is full or missing; more secrets go on the heap");
    }
    void* data = std::malloc(size);
    if (!data) throw std::bad_alloc();
    return data;
  }

  void Release(void* data, size_t size) {
    explicit_bzero(data, size);
    char* bytes = static_cast<char*>(data);
    if (base_ && bytes >= base_ && bytes < base_ + kRegion) {
      size_t start = (bytes - base_) / kBlock;
      size_t blocks = (size + kBlock - 1) / kBlock;
      absl::MutexLock lock(&mutex_);
      for (size_t i = 0; i < blocks; ++i) used_[start + i] = false;
      return;
    }
    std::free(data);
  }

 private:
  absl::Mutex mutex_;
  char* base_ = nullptr;  // set once, by the constructor
  std::bitset<kBlocks> used_ ABSL_GUARDED_BY(mutex_);
  bool warned_full_ ABSL_GUARDED_BY(mutex_) = false;
};

Arena& TheArena() {
  static Arena* arena = new Arena();  // never destroyed: secrets may outlive static destructors
  return *arena;
}

}  // namespace

void* AllocateLocked(size_t size) { return TheArena().Allocate(size); }

void ReleaseLocked(void* data, size_t size) {
  if (data) TheArena().Release(data, size);
}

}  // namespace stormbroker
