# Compiler flags shared by every Flint target, and the CUDA decision.

add_library(flint_warnings INTERFACE)
target_compile_options(flint_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wno-missing-field-initializers>)

if(FLINT_SANITIZE)
  set(flint_san_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:${flint_san_flags}>")
  add_link_options(${flint_san_flags})
endif()

# CUDA: AUTO builds the backend when a CUDA compiler is found; ON insists on one.
set(FLINT_HAVE_CUDA OFF)
if(NOT FLINT_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(CMAKE_CUDA_ARCHITECTURES ${FLINT_CUDA_ARCHS})
    enable_language(CUDA)
    # Debian 12's CMake 3.25 predates nvcc's C++20 support and would refuse to
    # generate; tell it the flag nvcc (>= 12) takes.
    if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
      list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
      set(CMAKE_CUDA20_COMPILE_FEATURES cuda_std_20)
    endif()
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    set(FLINT_HAVE_CUDA ON)
  elseif(FLINT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "FLINT_CUDA=ON but no CUDA compiler was found")
  endif()
endif()
message(STATUS "Flint: CUDA backend ${FLINT_HAVE_CUDA} (archs: ${FLINT_CUDA_ARCHS}), sanitizers ${FLINT_SANITIZE}")

# One CMake library per module (src/<module>/), sources globbed so that adding a
# file needs no edit here. Dependencies are linked PRIVATE unless a module's
# public header includes the other module's header.
function(flint_module name)
  cmake_parse_arguments(ARG "" "" "PUBLIC_DEPS;PRIVATE_DEPS;EXTRA_SOURCES" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  add_library(flint_${name} STATIC ${sources} ${ARG_EXTRA_SOURCES})
  target_include_directories(flint_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(flint_${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE flint_warnings ${ARG_PRIVATE_DEPS})
endfunction()
