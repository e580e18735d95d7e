/*
 * A PKCS#11 module that forwards every call to the module named by
 * FAULTY_PKCS11_MODULE, failing some of them as the plan file named by
 * FAULTY_PKCS11_PLAN says. Each plan line is
 *
 *     FUNCTION CKR_CODE COUNT      e.g.  C_Decrypt CKR_DEVICE_ERROR 2
 *
 * FUNCTION is a PKCS#11 function name, or * for any function but those that
 * load and describe the module (so that a token can still be opened);
 * CKR_CODE a name from the table below or a number (0x30); COUNT how many
 * calls fail. The first line with calls left wins. The plan is read again
 * whenever the file changes (replace it with rename(2) so that the change is
 * always seen), which lets a test inject faults into a running process; the
 * counters live in memory and restart with each new plan.
 *
 * One pseudo-code is no failure: "C_UnwrapKey SENSITIVE_IGNORED N" passes
 * the call on with CKA_SENSITIVE false in its template, so that the key
 * comes out readable, as from a token that ignores the attribute.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <p11-kit/pkcs11.h>

#define EXPORT __attribute__((visibility("default")))

static CK_FUNCTION_LIST *real;
static int finalize_real; /* 0 when someone else initialized the module */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct rule {
    char fn[48];
    CK_RV rv;
    unsigned long left;
} rules[32];
static size_t n_rules;
static struct stat plan_st;

#define SENSITIVE_IGNORED (CKR_VENDOR_DEFINED | 0x5e5UL)

static CK_RV code(const char *s)
{
#define C(x) {#x, x}
    static const struct {
        const char *name;
        CK_RV rv;
    } codes[] = {
        C(CKR_GENERAL_ERROR), C(CKR_FUNCTION_FAILED), C(CKR_DEVICE_ERROR),
        C(CKR_DEVICE_MEMORY), C(CKR_DEVICE_REMOVED), C(CKR_TOKEN_NOT_PRESENT),
        C(CKR_SESSION_CLOSED), C(CKR_SESSION_HANDLE_INVALID), C(CKR_USER_NOT_LOGGED_IN),
        C(CKR_HOST_MEMORY), C(CKR_FUNCTION_NOT_SUPPORTED), C(CKR_MECHANISM_INVALID),
        C(CKR_ARGUMENTS_BAD), C(CKR_KEY_HANDLE_INVALID), C(CKR_OBJECT_HANDLE_INVALID),
        C(CKR_ATTRIBUTE_READ_ONLY), C(CKR_TEMPLATE_INCONSISTENT), C(CKR_KEY_UNEXTRACTABLE),
        C(SENSITIVE_IGNORED),
    };
#undef C
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(codes[i].name, s) == 0)
            return codes[i].rv;
    return strtoul(s, NULL, 0);
}

/* Called with |lock| held. A missing plan means no faults. */
static void plan_load(void)
{
    const char *path = getenv("FAULTY_PKCS11_PLAN");
    struct stat st;
    char line[256], rv[64];
    FILE *f;
    memset(&st, 0, sizeof st);
    if (path != NULL && stat(path, &st) != 0)
        memset(&st, 0, sizeof st);
    if (st.st_ino == plan_st.st_ino && st.st_size == plan_st.st_size &&
        st.st_mtim.tv_sec == plan_st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == plan_st.st_mtim.tv_nsec)
        return;
    plan_st = st;
    n_rules = 0;
    if (st.st_ino == 0 || (f = fopen(path, "r")) == NULL)
        return;
    while (n_rules < sizeof rules / sizeof rules[0] && fgets(line, sizeof line, f) != NULL) {
        struct rule *r = &rules[n_rules];
        if (sscanf(line, "%47s %63s %lu", r->fn, rv, &r->left) == 3 && r->fn[0] != '#') {
            r->rv = code(rv);
            n_rules++;
        }
    }
    fclose(f);
}

static int exempt(const char *fn)
{
    static const char *const list[] = {"C_Initialize", "C_Finalize",   "C_GetFunctionList",
                                       "C_GetInfo",    "C_GetSlotList", "C_GetSlotInfo",
                                       "C_GetTokenInfo"};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (strcmp(fn, list[i]) == 0)
            return 1;
    return 0;
}

static CK_RV fault(const char *fn)
{
    CK_RV rv = CKR_OK;
    pthread_mutex_lock(&lock);
    plan_load();
    for (size_t i = 0; i < n_rules && rv == CKR_OK; i++) {
        struct rule *r = &rules[i];
        if (r->left > 0 && (strcmp(r->fn, fn) == 0 || (strcmp(r->fn, "*") == 0 && !exempt(fn)))) {
            r->left--;
            rv = r->rv;
        }
    }
    pthread_mutex_unlock(&lock);
    return rv;
}

/* One forwarding wrapper per function, by arity. */
#define PRE(f)                                                                                 \
    CK_RV rv_ = fault(#f);                                                                     \
    if (rv_ != CKR_OK)                                                                         \
        return rv_;
#define W1(f, A) static CK_RV w_##f(A a) { PRE(f) return real->f(a); }
#define W2(f, A, B) static CK_RV w_##f(A a, B b) { PRE(f) return real->f(a, b); }
#define W3(f, A, B, C) static CK_RV w_##f(A a, B b, C c) { PRE(f) return real->f(a, b, c); }
#define W4(f, A, B, C, D)                                                                      \
    static CK_RV w_##f(A a, B b, C c, D d) { PRE(f) return real->f(a, b, c, d); }
#define W5(f, A, B, C, D, E)                                                                   \
    static CK_RV w_##f(A a, B b, C c, D d, E e) { PRE(f) return real->f(a, b, c, d, e); }
#define W6(f, A, B, C, D, E, F)                                                                \
    static CK_RV w_##f(A a, B b, C c, D d, E e, F g) { PRE(f) return real->f(a, b, c, d, e, g); }
#define W8(f, A, B, C, D, E, F, G, H)                                                          \
    static CK_RV w_##f(A a, B b, C c, D d, E e, F g, G h, H i)                                 \
    {                                                                                          \
        PRE(f) return real->f(a, b, c, d, e, g, h, i);                                         \
    }

typedef CK_SESSION_HANDLE S;
typedef CK_OBJECT_HANDLE O;
typedef CK_BYTE_PTR BP;
typedef CK_ULONG UL;
typedef CK_ULONG_PTR ULP;
typedef CK_MECHANISM_PTR MP;
typedef CK_ATTRIBUTE_PTR AP;
typedef CK_OBJECT_HANDLE_PTR OP;
typedef CK_UTF8CHAR_PTR U8;

W1(C_GetInfo, CK_INFO_PTR)
W3(C_GetSlotList, CK_BBOOL, CK_SLOT_ID_PTR, ULP)
W2(C_GetSlotInfo, CK_SLOT_ID, CK_SLOT_INFO_PTR)
W2(C_GetTokenInfo, CK_SLOT_ID, CK_TOKEN_INFO_PTR)
W3(C_GetMechanismList, CK_SLOT_ID, CK_MECHANISM_TYPE_PTR, ULP)
W3(C_GetMechanismInfo, CK_SLOT_ID, CK_MECHANISM_TYPE, CK_MECHANISM_INFO_PTR)
W4(C_InitToken, CK_SLOT_ID, U8, UL, U8)
W3(C_InitPIN, S, U8, UL)
W5(C_SetPIN, S, U8, UL, U8, UL)
W5(C_OpenSession, CK_SLOT_ID, CK_FLAGS, CK_VOID_PTR, CK_NOTIFY, CK_SESSION_HANDLE_PTR)
W1(C_CloseSession, S)
W1(C_CloseAllSessions, CK_SLOT_ID)
W2(C_GetSessionInfo, S, CK_SESSION_INFO_PTR)
W3(C_GetOperationState, S, BP, ULP)
W5(C_SetOperationState, S, BP, UL, O, O)
W4(C_Login, S, CK_USER_TYPE, U8, UL)
W1(C_Logout, S)
W4(C_CreateObject, S, AP, UL, OP)
W5(C_CopyObject, S, O, AP, UL, OP)
W2(C_DestroyObject, S, O)
W3(C_GetObjectSize, S, O, ULP)
W4(C_GetAttributeValue, S, O, AP, UL)
W4(C_SetAttributeValue, S, O, AP, UL)
W3(C_FindObjectsInit, S, AP, UL)
W4(C_FindObjects, S, OP, UL, ULP)
W1(C_FindObjectsFinal, S)
W3(C_EncryptInit, S, MP, O)
W5(C_Encrypt, S, BP, UL, BP, ULP)
W5(C_EncryptUpdate, S, BP, UL, BP, ULP)
W3(C_EncryptFinal, S, BP, ULP)
W3(C_DecryptInit, S, MP, O)
W5(C_Decrypt, S, BP, UL, BP, ULP)
W5(C_DecryptUpdate, S, BP, UL, BP, ULP)
W3(C_DecryptFinal, S, BP, ULP)
W2(C_DigestInit, S, MP)
W5(C_Digest, S, BP, UL, BP, ULP)
W3(C_DigestUpdate, S, BP, UL)
W2(C_DigestKey, S, O)
W3(C_DigestFinal, S, BP, ULP)
W3(C_SignInit, S, MP, O)
W5(C_Sign, S, BP, UL, BP, ULP)
W3(C_SignUpdate, S, BP, UL)
W3(C_SignFinal, S, BP, ULP)
W3(C_SignRecoverInit, S, MP, O)
W5(C_SignRecover, S, BP, UL, BP, ULP)
W3(C_VerifyInit, S, MP, O)
W5(C_Verify, S, BP, UL, BP, UL)
W3(C_VerifyUpdate, S, BP, UL)
W3(C_VerifyFinal, S, BP, UL)
W3(C_VerifyRecoverInit, S, MP, O)
W5(C_VerifyRecover, S, BP, UL, BP, ULP)
W5(C_DigestEncryptUpdate, S, BP, UL, BP, ULP)
W5(C_DecryptDigestUpdate, S, BP, UL, BP, ULP)
W5(C_SignEncryptUpdate, S, BP, UL, BP, ULP)
W5(C_DecryptVerifyUpdate, S, BP, UL, BP, ULP)
W5(C_GenerateKey, S, MP, AP, UL, OP)
W8(C_GenerateKeyPair, S, MP, AP, UL, AP, UL, OP, OP)
W6(C_WrapKey, S, MP, O, O, BP, ULP)

static CK_RV w_C_UnwrapKey(S s, MP m, O key, BP in, UL in_len, AP t, UL n, OP out)
{
    static const CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE copy[32];
    CK_RV rv = fault("C_UnwrapKey");
    if (rv == SENSITIVE_IGNORED && n <= 32) {
        memcpy(copy, t, n * sizeof *t);
        for (UL i = 0; i < n; i++)
            if (copy[i].type == CKA_SENSITIVE)
                copy[i] = (CK_ATTRIBUTE){CKA_SENSITIVE, (void *)&no, sizeof no};
        t = copy;
    } else if (rv != CKR_OK) {
        return rv;
    }
    return real->C_UnwrapKey(s, m, key, in, in_len, t, n, out);
}
W6(C_DeriveKey, S, MP, O, AP, UL, OP)
W3(C_SeedRandom, S, BP, UL)
W3(C_GenerateRandom, S, BP, UL)
W1(C_GetFunctionStatus, S)
W1(C_CancelFunction, S)
W3(C_WaitForSlotEvent, CK_FLAGS, CK_SLOT_ID_PTR, CK_VOID_PTR)

/* The real module may already be initialized through another path of the
 * same process (the tests load it directly too); finalizing it then would
 * pull it from under that user. */
static CK_RV w_C_Initialize(void *args)
{
    CK_RV rv = real->C_Initialize(args);
    finalize_real = rv == CKR_OK;
    return rv == CKR_CRYPTOKI_ALREADY_INITIALIZED ? CKR_OK : rv;
}

static CK_RV w_C_Finalize(void *reserved)
{
    return finalize_real ? real->C_Finalize(reserved) : CKR_OK;
}

static CK_RV w_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

#define E(f) .f = w_##f
static CK_FUNCTION_LIST shim = {
    .version = {2, 40}, E(C_Initialize), E(C_Finalize), E(C_GetInfo), E(C_GetFunctionList),
    E(C_GetSlotList), E(C_GetSlotInfo), E(C_GetTokenInfo), E(C_GetMechanismList),
    E(C_GetMechanismInfo), E(C_InitToken), E(C_InitPIN), E(C_SetPIN), E(C_OpenSession),
    E(C_CloseSession), E(C_CloseAllSessions), E(C_GetSessionInfo), E(C_GetOperationState),
    E(C_SetOperationState), E(C_Login), E(C_Logout), E(C_CreateObject), E(C_CopyObject),
    E(C_DestroyObject), E(C_GetObjectSize), E(C_GetAttributeValue), E(C_SetAttributeValue),
    E(C_FindObjectsInit), E(C_FindObjects), E(C_FindObjectsFinal), E(C_EncryptInit),
    E(C_Encrypt), E(C_EncryptUpdate), E(C_EncryptFinal), E(C_DecryptInit), E(C_Decrypt),
    E(C_DecryptUpdate), E(C_DecryptFinal), E(C_DigestInit), E(C_Digest), E(C_DigestUpdate),
    E(C_DigestKey), E(C_DigestFinal), E(C_SignInit), E(C_Sign), E(C_SignUpdate), E(C_SignFinal),
    E(C_SignRecoverInit), E(C_SignRecover), E(C_VerifyInit), E(C_Verify), E(C_VerifyUpdate),
    E(C_VerifyFinal), E(C_VerifyRecoverInit), E(C_VerifyRecover), E(C_DigestEncryptUpdate),
    E(C_DecryptDigestUpdate), E(C_SignEncryptUpdate), E(C_DecryptVerifyUpdate),
    E(C_GenerateKey), E(C_GenerateKeyPair), E(C_WrapKey), E(C_UnwrapKey), E(C_DeriveKey),
    E(C_SeedRandom), E(C_GenerateRandom), E(C_GetFunctionStatus), E(C_CancelFunction),
    E(C_WaitForSlotEvent),
};
#undef E

static CK_RV w_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    *list = &shim;
    return CKR_OK;
}

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    const char *path = getenv("FAULTY_PKCS11_MODULE");
    CK_C_GetFunctionList get;
    void *lib;
    CK_RV rv = CKR_OK;
    pthread_mutex_lock(&lock);
    if (real == NULL) {
        lib = path != NULL ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        get = lib != NULL ? (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList") : NULL;
        rv = get != NULL ? get(&real) : CKR_GENERAL_ERROR;
    }
    pthread_mutex_unlock(&lock);
    if (rv == CKR_OK)
        *list = &shim;
    return rv;
}
