# CPack: `cpack -G DEB` (in the build folder) makes one .deb per component group: moert (libmoert, the CLI
# and the default model), moert-dev (header, CMake package, moert.pc), moert-cuda (the CUDA provider) and
# moert-mpi (the MPI provider), moert-java (moert.jar), moert-serve (the HTTP server); `cpack -G TGZ` one .tar.gz of everything (an install prefix).
set(CPACK_PACKAGE_NAME moert)
set(CPACK_PACKAGE_VENDOR "moert")
set(CPACK_PACKAGE_CONTACT "moert maintainers <moert@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Embedded runtime for DeepSeek-V3-architecture MoE models")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_RESOURCE_FILE_README ${PROJECT_SOURCE_DIR}/README.md)
set(CPACK_PACKAGE_FILE_NAME moert-${PROJECT_VERSION}-${CMAKE_SYSTEM_NAME}-${CMAKE_SYSTEM_PROCESSOR})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_ARCHIVE_COMPONENT_INSTALL OFF)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
# dpkg-shlibdeps finds the Debian packages the libraries need (libc6, libstdc++6, libpcre2-8-0, libopenmpi3).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME moert)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME moert-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "moert (= ${PROJECT_VERSION})")
set(CPACK_DEBIAN_MPI_PACKAGE_NAME moert-mpi)
set(CPACK_DEBIAN_MPI_PACKAGE_DEPENDS "moert (= ${PROJECT_VERSION})")
# cuBLASLt and NCCL come from NVIDIA's CUDA repository, which dpkg-shlibdeps knows nothing of (they may as
# well be a toolkit under /usr/local/cuda): the dependencies are declared by NVIDIA's package names.
set(CPACK_DEBIAN_CUDA_PACKAGE_NAME moert-cuda)
set(CPACK_DEBIAN_CUDA_PACKAGE_SHLIBDEPS OFF)
if(MOERT_HAVE_CUDA)
  set(_cuda_deps "moert (= ${PROJECT_VERSION}), libc6, libstdc++6, libgcc-s1")
  if(CUDAToolkit_VERSION_MAJOR)
    string(APPEND _cuda_deps
           ", libcublas-${CUDAToolkit_VERSION_MAJOR}-${CUDAToolkit_VERSION_MINOR} | cuda-libraries-${CUDAToolkit_VERSION_MAJOR}-${CUDAToolkit_VERSION_MINOR}")
  endif()
  if(MOERT_HAVE_NCCL)
    string(APPEND _cuda_deps ", libnccl2")
  endif()
  set(CPACK_DEBIAN_CUDA_PACKAGE_DEPENDS "${_cuda_deps}")
endif()
set(CPACK_COMPONENTS_ALL runtime dev)
foreach(p cuda mpi java serve)
  if(TARGET moert_${p})
    list(APPEND CPACK_COMPONENTS_ALL ${p})
  endif()
endforeach()
# moert-serve (`moert serve`) on its own: it brings cpp-httplib (and through it OpenSSL) that moert lacks.
set(CPACK_DEBIAN_SERVE_PACKAGE_NAME moert-serve)
set(CPACK_DEBIAN_SERVE_PACKAGE_DEPENDS "moert (= ${PROJECT_VERSION})")
# moert-serve links libmoert.so.0, which is in the moert package (declared above), not a system library:
# dpkg-shlibdeps is told where the built one is so it can read the rest of the dependencies.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS "${PROJECT_BINARY_DIR}/capi")
set(CPACK_DEBIAN_JAVA_PACKAGE_NAME moert-java)
set(CPACK_DEBIAN_JAVA_PACKAGE_ARCHITECTURE amd64)
# The jar carries its own copy of libmoert (as resources); it needs a Java runtime.
set(CPACK_DEBIAN_JAVA_PACKAGE_SHLIBDEPS OFF)
set(CPACK_DEBIAN_JAVA_PACKAGE_DEPENDS "default-jre-headless | java17-runtime-headless")
# Installed libraries without their debug info (the build tree keeps it for the ABI check).
set(CPACK_STRIP_FILES ON)
include(CPack)
