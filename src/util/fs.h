/* Files: whole-file reads with a limit, atomic writes, private directories, key permissions. */
#ifndef TW_UTIL_FS_H
#define TW_UTIL_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

/* Largest file fs_read_file reads unless told otherwise: certificates, CRLs, configs. */
#define FS_READ_LIMIT_DEFAULT (16u * 1024 * 1024)

/* Read the whole file into a new NUL-terminated buffer (*data, free() it). Fails with TW_ERR_IO
 * naming the path when it is missing, unreadable or larger than limit bytes. */
int fs_read_file(const char *path, size_t limit, char **data, size_t *len,
                 struct tw_err *err) TW_MUST_CHECK;

/* Write data to path atomically: a temp file in the same directory with the given mode,
 * written, fsynced, renamed over path, then the directory fsynced. On failure path is left as
 * it was. For tests, TWOWAY_FAULT_WRITE=SUBSTRING makes writes to matching paths fail with
 * ENOSPC after the temp file was created, as a full disk would. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                    struct tw_err *err) TW_MUST_CHECK;

/* Like fs_write_atomic, but fails with TW_ERR_EXISTS when path already exists. */
int fs_write_new(const char *path, const void *data, size_t len, mode_t mode,
                 struct tw_err *err) TW_MUST_CHECK;

/* Create dir (and missing parents) with mode 0700; an existing directory is fine. */
int fs_mkdir_private(const char *path, struct tw_err *err) TW_MUST_CHECK;

/* Refuse a private key file that group or others can read (or write). */
int fs_check_key_perms(const char *path, struct tw_err *err) TW_MUST_CHECK;

/* 1 if path exists (any type), 0 otherwise. */
int fs_exists(const char *path);

/* Join dir and name into out (of size cap). Fails with TW_ERR_USAGE when it does not fit. */
int fs_path_join(char *out, size_t cap, const char *dir, const char *name,
                 struct tw_err *err) TW_MUST_CHECK;

#endif
