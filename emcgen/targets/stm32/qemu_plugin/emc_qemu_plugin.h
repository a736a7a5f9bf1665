/* The few declarations of QEMU's public TCG plugin C API that insn_count.c uses, written from the API
 * documentation (docs/devel/tcg-plugins in the QEMU manual). QEMU ships no plugin header in Debian's
 * qemu-system-arm package, so the plugin declares what it needs itself.
 *
 * QEMU loads a plugin (a shared library given with -plugin file.so,key=value,...), checks the exported
 * integer `qemu_plugin_version` against the API versions it supports, then calls the exported
 * `qemu_plugin_install`. API version 1 is the one of QEMU 7.2 (Debian 12); the functions below keep their
 * signatures in later versions. Override with -DEMC_QEMU_PLUGIN_API_VERSION=<n> when a newer QEMU
 * refuses version 1.
 */
#ifndef EMC_QEMU_PLUGIN_H
#define EMC_QEMU_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifndef EMC_QEMU_PLUGIN_API_VERSION
#define EMC_QEMU_PLUGIN_API_VERSION 1
#endif

#define EMC_PLUGIN_EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;   /* only passed through; never dereferenced here */
struct qemu_plugin_tb;                    /* a translation block being translated (opaque) */
struct qemu_plugin_insn;                  /* one guest instruction of that block (opaque) */

enum qemu_plugin_cb_flags {
    QEMU_PLUGIN_CB_NO_REGS,   /* the callback reads no guest registers */
    QEMU_PLUGIN_CB_R_REGS,
    QEMU_PLUGIN_CB_RW_REGS,
};

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

/* Called by QEMU after loading; return 0 on success. argv holds the "key=value" options. */
EMC_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);   /* to QEMU's log: needs -d plugin (and -D file) */

#endif
