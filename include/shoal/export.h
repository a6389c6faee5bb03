// Symbol visibility for the shoal shared library. The library is built with hidden visibility;
// only declarations marked SHOAL_EXPORT are part of its ABI.
#pragma once

#define SHOAL_EXPORT [[gnu::visibility("default")]]
