//! LD_PRELOAD library that counts memcpy/memmove sizes and records the call sites of large copies.
