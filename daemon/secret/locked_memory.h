// Memory for secrets: kept in one region that is locked into RAM (never
// swapped out) and left out of core dumps (MADV_DONTDUMP), and wiped when
// released. When the region is full, or the system refuses to lock it, the
// heap is used instead (still wiped), and the daemon says so once in its log.
#pragma once

#include <cstddef>

namespace stormbroker {

// Never returns null.
void* AllocateLocked(size_t size);
// Wipes `size` bytes at `data` and releases them. `size` must be the size
// given to AllocateLocked.
void ReleaseLocked(void* data, size_t size);

}  // namespace stormbroker
