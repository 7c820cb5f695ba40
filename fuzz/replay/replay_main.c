/* Replays every file of a corpus directory through LLVMFuzzerTestOneInput, for builds without
 * libFuzzer: a crash or sanitizer report fails the ctest entry. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    DIR *dir = opendir(argv[1]);
    if (dir == NULL) {
        perror(argv[1]);
        return 1;
    }
    int count = 0;
    struct dirent *ent;
    while ((ent = readdir(dir)) != NULL) {
        if (ent->d_name[0] == '.')
            continue;
        char path[4096];
        struct tw_err err;
        char *data;
        size_t len;
        if (fs_path_join(path, sizeof(path), argv[1], ent->d_name, &err) != 0 ||
            fs_read_file(path, 1u << 24, &data, &len, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            closedir(dir);
            return 1;
        }
        LLVMFuzzerTestOneInput((const uint8_t *)data, len);
        free(data);
        count++;
    }
    closedir(dir);
    printf("replayed %d inputs from %s\n", count, argv[1]);
    return 0;
}
