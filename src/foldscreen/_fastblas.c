/*
 * cblas_sgemm for MLX's Linux CPU wheel, forwarded to OpenBLAS.
 *
 * The mlx[cpu] wheel links an unoptimised reference BLAS (libblas-<hash>.so.3.10.0, bundled and
 * renamed by auditwheel, so no other libblas.so.3 can stand in for it by soname). Its matrix
 * products run many times faster through OpenBLAS, which PyPI ships (scipy-openblas32) only with
 * prefixed symbols (scipy_cblas_sgemm). This module defines the unprefixed symbol and forwards
 * it; scipy_cblas_sgemm is resolved at load time from the OpenBLAS that foldscreen.model.blas
 * loads first with RTLD_GLOBAL; nothing is linked at build time.
 *
 * Loaded before MLX, this cblas_sgemm is found first in the global scope when libmlx.so is
 * bound. Python loads extension modules with RTLD_NOW, so once MLX is imported its call of
 * cblas_sgemm is already bound to the reference BLAS, and no later load can change that:
 * `rebind` rewrites that binding instead, the slot of cblas_sgemm in libmlx.so's global offset
 * table (what the dynamic linker itself writes), so that the route does not depend on which
 * was imported first. `calls` counts the products that came through here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* first; it defines _GNU_SOURCE, which dlinfo needs */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if __ELF_NATIVE_CLASS != 64
#error "_fastblas reads 64-bit ELF relocations (x86-64, aarch64)"
#endif

enum order { row_major = 101, col_major = 102 };
enum transpose { no_trans = 111, trans = 112, conj_trans = 113 };

extern void scipy_cblas_sgemm(enum order, enum transpose, enum transpose, int m, int n, int k,
                              float alpha, const float *a, int lda, const float *b, int ldb,
                              float beta, float *c, int ldc);

static unsigned long n_calls = 0;

static void fast_sgemm(enum order o, enum transpose ta, enum transpose tb, int m, int n, int k,
                       float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                       float *c, int ldc) {
  __atomic_fetch_add(&n_calls, 1, __ATOMIC_RELAXED);
  scipy_cblas_sgemm(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cblas_sgemm(enum order o, enum transpose ta, enum transpose tb, int m, int n, int k,
                 float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                 float *c, int ldc) {
  fast_sgemm(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* The library's read-only-after-relocation range (PT_GNU_RELRO), found by its load address. */
struct relro { ElfW(Addr) base, start, end; };

static int find_relro(struct dl_phdr_info *info, size_t size, void *data) {
  struct relro *r = data;
  (void)size;
  if (info->dlpi_addr != r->base) return 0;
  for (int i = 0; i < info->dlpi_phnum; i++)
    if (info->dlpi_phdr[i].p_type == PT_GNU_RELRO) {
      r->start = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
      r->end = r->start + info->dlpi_phdr[i].p_memsz;
    }
  return 1;
}

static int write_slot(void **slot, void *value, const struct relro *r) {
  ElfW(Addr) at = (ElfW(Addr))slot;
  long page = sysconf(_SC_PAGESIZE);
  void *start = (void *)(at & ~(ElfW(Addr))(page - 1));
  int protected = at >= r->start && at < r->end;
  if (protected && mprotect(start, page, PROT_READ | PROT_WRITE) != 0) return 0;
  *slot = value;
  if (protected) mprotect(start, page, PROT_READ);
  return 1;
}

/* Point every relocation of `name` in the loaded library `map` at `value`; the count written. */
static int patch(struct link_map *map, const char *name, void *value) {
  ElfW(Addr) symtab = 0, strtab = 0, tables[2] = {0, 0}, sizes[2] = {0, 0};
  for (ElfW(Dyn) *d = map->l_ld; d->d_tag != DT_NULL; d++) {
    switch (d->d_tag) {
      case DT_SYMTAB: symtab = d->d_un.d_ptr; break;
      case DT_STRTAB: strtab = d->d_un.d_ptr; break;
      case DT_JMPREL: tables[0] = d->d_un.d_ptr; break;
      case DT_PLTRELSZ: sizes[0] = d->d_un.d_val; break;
      case DT_RELA: tables[1] = d->d_un.d_ptr; break;
      case DT_RELASZ: sizes[1] = d->d_un.d_val; break;
    }
  }
  if (!symtab || !strtab) return 0;
  /* glibc relocates these addresses in place; others may leave them relative to the base. */
  if (symtab < map->l_addr) symtab += map->l_addr;
  if (strtab < map->l_addr) strtab += map->l_addr;
  struct relro r = {map->l_addr, 0, 0};
  dl_iterate_phdr(find_relro, &r);
  int written = 0;
  for (int t = 0; t < 2; t++) {
    if (!tables[t]) continue;
    ElfW(Addr) at = tables[t] < map->l_addr ? tables[t] + map->l_addr : tables[t];
    ElfW(Rela) *rela = (ElfW(Rela) *)at;
    for (size_t i = 0; i < sizes[t] / sizeof(ElfW(Rela)); i++) {
      ElfW(Sym) *sym = (ElfW(Sym) *)symtab + ELF64_R_SYM(rela[i].r_info);
      if (ELF64_R_SYM(rela[i].r_info) && strcmp((const char *)strtab + sym->st_name, name) == 0)
        written += write_slot((void **)(map->l_addr + rela[i].r_offset), value, &r);
    }
  }
  return written;
}

static PyObject *rebind(PyObject *self, PyObject *args) {
  const char *library;
  (void)self;
  if (!PyArg_ParseTuple(args, "s", &library)) return NULL;
  void *handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD);
  if (handle == NULL) return PyLong_FromLong(0); /* not loaded: nothing is bound yet */
  struct link_map *map = NULL;
  int written = 0;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0) written = patch(map, "cblas_sgemm", (void *)fast_sgemm);
  dlclose(handle);
  return PyLong_FromLong(written);
}

static PyObject *calls(PyObject *self, PyObject *args) {
  (void)self;
  (void)args;
  return PyLong_FromUnsignedLong(__atomic_load_n(&n_calls, __ATOMIC_RELAXED));
}

static PyMethodDef methods[] = {
    {"rebind", rebind, METH_VARARGS,
     "rebind(library) -> slots: point the loaded library's cblas_sgemm calls here"},
    {"calls", calls, METH_NOARGS, "calls() -> matrix products forwarded to OpenBLAS so far"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastblas",
                                    "cblas_sgemm forwarded to OpenBLAS (see blas.py)", -1, methods};

PyMODINIT_FUNC PyInit__fastblas(void) { return PyModule_Create(&module); }
