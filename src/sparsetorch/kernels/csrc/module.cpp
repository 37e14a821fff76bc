// An empty Python module `sparsetorch._C`: importing it loads this library, whose static
// initializers register the `sparsetorch::*` operators with torch's dispatcher (ops.cpp).
#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_C", "sparsetorch's C++ custom operators", -1, nullptr};
  return PyModule_Create(&def);
}
