/* A stand-in for Windows' bcryptprimitives.dll, which Debian's wine 8 lacks: Rust >= 1.78
   programs import ProcessPrng from it for their random numbers and exit 53 without it.
   Built with mingw into the wine prefix by scripts/windows-test.sh; never shipped. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, n, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
