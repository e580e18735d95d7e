/*
 * seal: a program outside dcmseal that uses it as a library, through its
 * public API only. It seals a file and opens it again, then does the same
 * to a buffer in memory, under a KEK in a PKCS#11 token.
 *
 *   seal TOKEN_URI KEY FILE
 *
 * TOKEN_URI names the token and where its PIN comes from, e.g.
 *   pkcs11:token=archive?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/dcmseal/pin
 * and KEY is a KEK made with `dcmseal key create KEY`. FILE is sealed to
 * FILE.dcms and opened again to FILE.out, both written the way dcmseal
 * writes its outputs: complete, or not at all.
 *
 * Build it against an installed dcmseal with pkg-config:
 *   cc seal.c $(pkg-config --cflags --libs dcmseal) -o seal
 * or with CMake (CMakeLists.txt here): find_package(dcmseal CONFIG).
 */
#define _POSIX_C_SOURCE 200809L /* open's O_CLOEXEC under -std=c11 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dcmseal/engine.h>

/* Every dcmseal call reports failure the same way: a status, and a message
 * in |err| that names what failed. */
#define TRY(call)                                                                \
    do {                                                                         \
        if ((call) != DCMSEAL_OK) {                                              \
            fprintf(stderr, "seal: %s: %s\n", #call, err.message);               \
            goto out;                                                            \
        }                                                                        \
    } while (0)

/* Seals (|seal|) or opens |in_path| into |out_path|. */
static dcmseal_status file_to_file(const char *in_path, const char *out_path,
                                   const dcmseal_keyring *ring, int seal,
                                   dcmseal_object_report *rep, dcmseal_error *err)
{
    dcmseal_outfile_t *out = NULL;
    dcmseal_status st;
    int in = open(in_path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return dcmseal_fail(err, DCMSEAL_E_IO, "%s: cannot open", in_path);
    /* A temporary file beside |out_path|, linked into place on commit. */
    st = dcmseal_outfile_open(&out, out_path, 0600, 1, err);
    if (st == DCMSEAL_OK) {
        if (seal) {
            const dcmseal_seal_opts opts = {.keyring = ring};
            st = dcmseal_seal_fd(rep, dcmseal_outfile_fd(out), in, &opts, err);
        } else {
            /* 1: also check the DICOM identity bound into the header. */
            st = dcmseal_open_fd(rep, dcmseal_outfile_fd(out), in, ring, 1, err);
        }
    }
    if (st == DCMSEAL_OK)
        st = dcmseal_outfile_commit(out, err); /* frees |out| */
    else
        dcmseal_outfile_abort(out); /* nothing appears under |out_path| */
    close(in);
    return st;
}

/* Whether two files hold the same bytes. */
static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa != NULL && fb != NULL;
    while (same) {
        int ca = getc(fa), cb = getc(fb);
        if (ca != cb)
            same = 0;
        else if (ca == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

int main(int argc, char **argv)
{
    dcmseal_error err;
    dcmseal_token_t *token = NULL;
    dcmseal_session_t *session = NULL;
    dcmseal_token_ring_t *ring = NULL;
    dcmseal_encryptor_t *enc = NULL;
    dcmseal_decryptor_t *dec = NULL;
    dcmseal_object_report rep;
    const dcmseal_keyring *kr;
    uint8_t header[DCMSEAL_PREAMBLE_LEN], *plain = NULL, *sealed = NULL, *back = NULL;
    const size_t n = 300000; /* the buffer: a little over one 256 KiB segment */
    size_t cap, back_cap, len = 0, total = 0, got = 0, all = 0;
    char sealed_path[4096], out_path[4096];
    int rc = 1;

    if (argc != 4) {
        fprintf(stderr, "usage: seal TOKEN_URI KEY FILE\n");
        return 2;
    }
    dcmseal_error_clear(&err);
    snprintf(sealed_path, sizeof sealed_path, "%s.dcms", argv[3]);
    snprintf(out_path, sizeof out_path, "%s.out", argv[3]);

    /* The token (thread-safe, shared), a session (one per thread) and a
     * key ring over it that wraps new data keys under KEY's primary
     * version. Each is freed in the reverse order. */
    TRY(dcmseal_token_open(&token, argv[1], &err));
    TRY(dcmseal_session_open(&session, token, &err));
    TRY(dcmseal_token_ring_new(&ring, session, argv[2], DCMSEAL_OAEP_AUTO, &err));
    kr = dcmseal_token_ring_get0_keyring(ring);

    /* ---- a file: seal it, open it again, compare --------------------- */
    TRY(file_to_file(argv[3], sealed_path, kr, 1, &rep, &err));
    printf("file: %s, %llu bytes sealed to %s (%s object, key '%s' v%u)\n", argv[3],
           (unsigned long long)rep.plain_bytes, sealed_path, rep.is_dicom ? "DICOM" : "opaque",
           rep.wrap.kek_name, rep.wrap.kek_version);
    TRY(file_to_file(sealed_path, out_path, kr, 0, &rep, &err));
    if (!same_file(argv[3], out_path)) {
        fprintf(stderr, "seal: %s differs from %s\n", out_path, argv[3]);
        goto out;
    }
    printf("file: opened again to %s, the same %llu bytes\n", out_path,
           (unsigned long long)rep.plain_bytes);

    /* ---- a buffer: streaming, init / update / final --------------------- */
    if ((plain = malloc(n)) == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        plain[i] = (uint8_t)(i * 7 + 3);
    /* No identity: an opaque object. */
    TRY(dcmseal_encrypt_init(&enc, header, &(dcmseal_encrypt_params){.keyring = kr}, &err));
    /* update and final say how much room they need at most. */
    cap = sizeof header + dcmseal_encrypt_update_max(enc, n) + DCMSEAL_SEGMENT_DEFAULT +
                 DCMSEAL_TAG_LEN;
    if ((sealed = malloc(cap)) == NULL)
        goto out;
    memcpy(sealed, header, sizeof header);
    total = sizeof header;
    TRY(dcmseal_encrypt_update(enc, sealed + total, cap - total, &len, plain, n, &err));
    total += len;
    TRY(dcmseal_encrypt_final(enc, sealed + total, cap - total, &len, &err));
    total += len;
    printf("buffer: %zu bytes sealed to %zu\n", n, total);

    TRY(dcmseal_decrypt_new(&dec, kr, &err));
    back_cap = dcmseal_decrypt_update_max(dec, total) + DCMSEAL_SEGMENT_DEFAULT;
    if ((back = malloc(back_cap)) == NULL)
        goto out;
    TRY(dcmseal_decrypt_update(dec, back, back_cap, &got, sealed, total, &err));
    all = got;
    /* Only final proves the whole object authentic: until then, treat what
     * update wrote as unconfirmed. */
    TRY(dcmseal_decrypt_final(dec, back + all, back_cap - all, &got, &err));
    all += got;
    if (all != n || memcmp(back, plain, n) != 0) {
        fprintf(stderr, "seal: the buffer came back different\n");
        goto out;
    }
    printf("buffer: opened again, the same %zu bytes\n", all);
    rc = 0;
out:
    dcmseal_decryptor_free(dec);
    dcmseal_encryptor_free(enc);
    dcmseal_token_ring_free(ring);
    dcmseal_session_free(session);
    dcmseal_token_free(token);
    free(plain);
    free(sealed);
    free(back);
    return rc;
}
