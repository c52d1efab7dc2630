# SPDX-License-Identifier: Apache-2.0
#[=======================================================================[.rst:
BpfObject
---------

``pyfalco_bpf_object(<name> SOURCE <file.bpf.c> INCLUDES <dir>...)``

Compiles one ``.bpf.c`` with clang ``-target bpf`` (CO-RE, BTF from the vendored
``vmlinux.h``), then generates its libbpf skeleton with ``bpftool gen skeleton``.
Defines an INTERFACE library ``<name>_skel`` whose include directory holds
``<name>.skel.h``; link it to embed the BPF object in a C target.

Every header below the driver directory is a dependency (GLOB_RECURSE with
CONFIGURE_DEPENDS), so editing a helper rebuilds the object.
#]=======================================================================]

find_program(PYFALCO_CLANG NAMES clang clang-16 clang-15 clang-14 REQUIRED)
find_program(PYFALCO_BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

execute_process(COMMAND ${PYFALCO_CLANG} --version OUTPUT_VARIABLE _clang_version_out)
string(REGEX MATCH "clang version ([0-9]+)" _m "${_clang_version_out}")
if(CMAKE_MATCH_1 VERSION_LESS 12)
  message(FATAL_ERROR "pyfalco: the eBPF driver needs clang >= 12 (found '${CMAKE_MATCH_1}' at ${PYFALCO_CLANG}); install the clang package")
endif()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(PYFALCO_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(PYFALCO_BPF_ARCH arm64)
else()
  message(FATAL_ERROR "pyfalco: no vendored vmlinux.h for ${CMAKE_SYSTEM_PROCESSOR}")
endif()

function(pyfalco_bpf_object name)
  cmake_parse_arguments(ARG "" "SOURCE" "INCLUDES;DEFINES" ${ARGN})
  get_filename_component(_src_dir ${ARG_SOURCE} DIRECTORY)
  file(GLOB_RECURSE _deps CONFIGURE_DEPENDS ${_src_dir}/*.h)
  set(_obj ${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o)
  set(_skel_dir ${CMAKE_CURRENT_BINARY_DIR}/skel)
  set(_skel ${_skel_dir}/${name}.skel.h)
  set(_incs)
  foreach(_i ${ARG_INCLUDES})
    list(APPEND _incs -I${_i})
  endforeach()
  set(_defs)
  foreach(_d ${ARG_DEFINES})
    list(APPEND _defs -D${_d})
  endforeach()
  add_custom_command(
    OUTPUT ${_obj}
    COMMAND ${PYFALCO_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${PYFALCO_BPF_ARCH} -D__PYFALCO_BPF__
            -Wall -Werror -Wno-unused-function ${_defs} ${_incs} -c ${ARG_SOURCE} -o ${_obj}
    DEPENDS ${ARG_SOURCE} ${_deps}
    COMMENT "BPF ${name}.bpf.c"
    VERBATIM)
  add_custom_command(
    OUTPUT ${_skel}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${_skel_dir}
    COMMAND sh -c "${PYFALCO_BPFTOOL} gen skeleton ${_obj} name ${name} > ${_skel}.tmp && mv ${_skel}.tmp ${_skel}"
    DEPENDS ${_obj}
    COMMENT "BPF skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${_skel})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${_skel_dir})
endfunction()
