/* QEMU TCG plugin: count executed guest instructions, in total and inside marked regions.
 *
 *   -plugin libemc_insn_count.so,begin=0x08000123,end=0x08000456 -d plugin -D log.txt
 *
 * A region starts when the instruction at `begin` executes and ends when the one at `end` executes;
 * its count includes the `begin` instruction and excludes the `end` one. Every begin/end pair gives
 * one region (e.g. one per inference), in execution order. Without begin/end only the total is counted.
 *
 * Method: every executed translation block adds its instruction count to the total (one callback per
 * block, cheap). The marker instructions get an extra callback that knows its position in the block,
 * which makes the region counts exact at instruction granularity. A block that stops early (a fault in
 * its middle) still counts whole; the semihosting BKPT ends its block, so exits count exactly.
 * Single vCPU (Cortex-M machines); counters are plain 64-bit integers.
 *
 * Output at exit through qemu_plugin_outs, one "key=value" line each:
 *   emc_insn_count region[<i>]=<n>      for each completed region
 *   emc_insn_count regions=<count> open=<0|1> total=<n>
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emc_qemu_plugin.h"

EMC_PLUGIN_EXPORT int qemu_plugin_version = EMC_QEMU_PLUGIN_API_VERSION;

#define NO_ADDRESS UINT64_MAX

static uint64_t begin_addr = NO_ADDRESS;
static uint64_t end_addr = NO_ADDRESS;
static uint64_t total;                /* instructions of all blocks entered so far (whole blocks) */
static int region_open;
static uint64_t region_start;
static uint64_t *regions;
static size_t n_regions, cap_regions;

/* One per instrumented marker instruction: whether it begins or ends a region, and how many
 * instructions of its block come at or after it (already added to `total` when it executes). */
struct marker {
    int is_begin;
    uint64_t not_yet_executed;
};

static void on_block(unsigned int vcpu, void *userdata)
{
    (void)vcpu;
    total += (uint64_t)(uintptr_t)userdata;
}

static void on_marker(unsigned int vcpu, void *userdata)
{
    const struct marker *m = userdata;
    uint64_t before = total - m->not_yet_executed;   /* instructions executed before this one */
    (void)vcpu;
    if (m->is_begin) {
        region_open = 1;
        region_start = before;
        return;
    }
    if (!region_open) {
        return;   /* an end without a begin is ignored */
    }
    region_open = 0;
    if (n_regions == cap_regions) {
        size_t cap = cap_regions ? 2 * cap_regions : 64;
        uint64_t *grown = realloc(regions, cap * sizeof *regions);
        if (!grown) {
            return;
        }
        regions = grown;
        cap_regions = cap;
    }
    regions[n_regions++] = before - region_start;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS, (void *)(uintptr_t)n);
    if (begin_addr == NO_ADDRESS) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t vaddr = qemu_plugin_insn_vaddr(insn);
        if (vaddr != begin_addr && vaddr != end_addr) {
            continue;
        }
        /* Blocks are translated a bounded number of times; the small allocation lives until exit. */
        struct marker *m = malloc(sizeof *m);
        if (!m) {
            continue;
        }
        m->is_begin = vaddr == begin_addr;
        m->not_yet_executed = n - i;
        qemu_plugin_register_vcpu_insn_exec_cb(insn, on_marker, QEMU_PLUGIN_CB_NO_REGS, m);
    }
}

static void on_exit_report(qemu_plugin_id_t id, void *userdata)
{
    char line[128];
    (void)id, (void)userdata;
    for (size_t i = 0; i < n_regions; i++) {
        snprintf(line, sizeof line, "emc_insn_count region[%zu]=%" PRIu64 "\n", i, regions[i]);
        qemu_plugin_outs(line);
    }
    snprintf(line, sizeof line, "emc_insn_count regions=%zu open=%d total=%" PRIu64 "\n", n_regions,
             region_open, total);
    qemu_plugin_outs(line);
    free(regions);
}

static int parse_address(const char *text, uint64_t *out)
{
    char *rest;
    unsigned long long value = strtoull(text, &rest, 0);
    if (rest == text || *rest != '\0') {
        return -1;
    }
    *out = (uint64_t)value;
    return 0;
}

int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        int bad;
        if (!strncmp(argv[i], "begin=", 6)) {
            bad = parse_address(argv[i] + 6, &begin_addr);
        } else if (!strncmp(argv[i], "end=", 4)) {
            bad = parse_address(argv[i] + 4, &end_addr);
        } else {
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "emc_insn_count: bad option '%s' (expected begin=<address> end=<address>)\n",
                    argv[i]);
            return -1;
        }
    }
    if ((begin_addr == NO_ADDRESS) != (end_addr == NO_ADDRESS)) {
        fprintf(stderr, "emc_insn_count: give both begin= and end=, or neither\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit_report, NULL);
    return 0;
}
