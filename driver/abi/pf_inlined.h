/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
#ifndef PYFALCO_INLINED_H
#define PYFALCO_INLINED_H

/*
 * The syscalls whose record the eBPF driver's dispatcher (driver/pyfalco.bpf.c, pf_sys_exit)
 * builds inline, never through a tail call: they have no pf_x_<syscall> program and no entry in
 * pf_syscall_exit_tail_table (libpyfalco/src/engine_bpf.c). Keep in step with pf_sys_exit.
 * PF_IF_TAILED(sc, ...) expands to ... for the other syscalls of fillers_list.h, to nothing for
 * these.
 */
#define PF_INLINED_close ~, 1
#define PF_INLINED_openat ~, 1

#define PF_SECOND_(a, b, ...) b
#define PF_SECOND(...) PF_SECOND_(__VA_ARGS__)
#define PF_IS_INLINED(sc) PF_SECOND(PF_INLINED_##sc, 0, ~)
#define PF_CAT_(a, b) a##b
#define PF_CAT(a, b) PF_CAT_(a, b)
#define PF_IF_TAILED_0(...) __VA_ARGS__
#define PF_IF_TAILED_1(...)
#define PF_IF_TAILED(sc, ...) PF_CAT(PF_IF_TAILED_, PF_IS_INLINED(sc))(__VA_ARGS__)

#endif
