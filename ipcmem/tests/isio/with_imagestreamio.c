/* A program of ipcmem's tests that uses milk's ImageStreamIO library itself (not part of
 * ipcmem: the test compiles it only when IPCMEM_IMAGESTREAMIO points to a checkout of
 * milk-org/ImageStreamIO), to check that streams made by ipcmem open in ImageStreamIO and the
 * other way round. Lines for the test start with "@@ ".
 *
 *   with_imagestreamio create NAME   ImageStreamIO_createIm_gpu (int16 16x8x4 circular, 5
 *                                    semaphores, 3 keywords), keyword GAIN, one UpdateIm
 *   with_imagestreamio open NAME     ImageStreamIO_openIm; prints metadata and semaphores
 *   with_imagestreamio wait NAME     getsemwaitindex, semflush, semtimedwait (5 s), then cnt0
 *   with_imagestreamio write NAME    every byte 42, ImageStreamIO_UpdateIm
 */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include "ImageStreamIO.h"

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    IMAGE im;
    memset(&im, 0, sizeof im);
    if (!strcmp(argv[1], "create")) {
        uint32_t size[3] = {16, 8, 4};
        if (ImageStreamIO_createIm_gpu(&im, argv[2], 3, size, _DATATYPE_INT16, -1, 1, 5, 3, CIRCULAR_BUFFER | ZAXIS_TEMPORAL, 0)) return 1;
        strcpy(im.kw[0].name, "GAIN"); im.kw[0].type = 'L'; im.kw[0].value.numl = 7;
        im.md->write = 1; memset(im.array.raw, 3, im.md->imdatamemsize); im.md->cnt1 = 2; 
        ImageStreamIO_UpdateIm(&im);
        printf("@@ created cnt0=%lu memsize=%lu\n", im.md->cnt0, im.memsize);
        return 0;
    }
    if (ImageStreamIO_openIm(&im, argv[2])) { printf("@@ openIm failed\n"); return 1; }
    printf("@@ opened %s naxis=%d %ux%ux%u type=%d cnt0=%lu cnt1=%lu sem=%d NBkw=%d memsize=%lu\n", im.md->name, im.md->naxis,
           im.md->size[0], im.md->size[1], im.md->size[2], im.md->datatype, im.md->cnt0, im.md->cnt1, im.md->sem, im.md->NBkw, im.memsize);
    for (int i = 0; i < im.md->NBkw; i++) if (im.kw[i].type != 'N') printf("@@ kw %s %c\n", im.kw[i].name, im.kw[i].type);
    for (int i = 0; i < im.md->sem; i++) printf("@@ sem %d value=%ld read=%d write=%d\n", i, ImageStreamIO_semvalue(&im, i), im.semReadPID[i], im.semWritePID[i]);
    if (!strcmp(argv[1], "wait")) {
        int index = ImageStreamIO_getsemwaitindex(&im, 0);
        ImageStreamIO_semflush(&im, index);
        printf("@@ claimed %d\n", index); fflush(stdout);
        struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts); ts.tv_sec += 5;
        int r = ImageStreamIO_semtimedwait(&im, index, &ts);
        printf("@@ waited r=%d cnt0=%lu byte0=%u\n", r, im.md->cnt0, im.array.UI8[0]);
    }
    if (!strcmp(argv[1], "write")) {
        im.md->write = 1; memset(im.array.raw, 42, im.md->imdatamemsize); ImageStreamIO_UpdateIm(&im);
        printf("@@ wrote cnt0=%lu\n", im.md->cnt0);
    }
    return 0;
}
