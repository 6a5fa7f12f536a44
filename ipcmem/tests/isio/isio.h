/* The structures of an ImageStreamIO 2.00 stream file, written by the ipcmem project from its
 * own description (docs/isio-layout.md), for the tests: a C peer that reads and writes streams
 * as ImageStreamIO does, with glibc's sem_t. Not ImageStreamIO's header. */
#ifndef IPCMEM_TEST_ISIO_H
#define IPCMEM_TEST_ISIO_H

#include <semaphore.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define ISIO_VERSION "2.00"
#define ISIO_SEM_MAXVAL 10
#define ISIO_CIRCULAR 0x1ULL
#define ISIO_MATH 0x2ULL
#define ISIO_ZTEMPORAL 0x20000ULL
#define ISIO_ROUND8(x) (((x) + 7) & ~(uint64_t)7)

typedef struct {
    char version[32];
    char name[80];
    uint8_t naxis;
    uint32_t size[3];
    uint64_t nelement;
    uint8_t datatype;
    uint64_t imagetype;
    struct timespec creationtime;
    struct timespec lastaccesstime;
    struct timespec atime;
    struct timespec writetime;
    pid_t creatorPID;
    pid_t ownerPID;
    uint8_t shared;
    ino_t inode;
    int8_t location;
    uint8_t status;
    uint64_t flag;
    uint8_t logflag;
    uint16_t sem;
    uint16_t NBproctrace;
    uint64_t cnt0;       /* 8-aligned: offset 264 */
    uint64_t cnt1;
    uint64_t cnt2;
    uint8_t write;
    uint16_t NBkw;
    uint32_t CBsize;
    uint32_t CBindex;
    uint64_t CBcycle;
    uint64_t imdatamemsize;
    char cudaMemHandle[64];
} isio_metadata;

typedef struct {
    char name[16];
    char type;                 /* N, L, D, S */
    union {
        int64_t numl;
        double numf;
        char valstr[16];
    } value;                   /* 8-aligned: offset 24 */
    uint64_t cnt;
    char comment[80];
} isio_keyword;

typedef struct {
    int triggermode;
    pid_t procwrite_PID;
    ino_t trigger_inode;
    struct timespec ts_procstart;
    struct timespec ts_streamupdate;
    int trigsemindex;
    int triggerstatus;
    uint64_t cnt0;
} isio_proc_trace;

typedef struct {
    uint64_t cnt0;
    uint64_t cnt1;
    struct timespec atime;
    struct timespec writetime;
} isio_cb_frame;

#endif
