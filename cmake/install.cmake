# Install rules: libmoert (SONAME libmoert.so.<major>) with moert.h, the provider libraries next to it
# (libmoert opens them from its own folder), the `moert` CLI, the default model, a CMake package
# (moert::moert) and moert.pc. Components: runtime (library, CLI, model), dev (header, CMake, pkg-config),
# cuda and mpi (the providers), which CPack (cmake/packaging.cmake) turns into packages.
include(CMakePackageConfigHelpers)

set(MOERT_INSTALL_MODELDIR ${CMAKE_INSTALL_DATADIR}/moert/models/moert-tiny-coder)
set(MOERT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/moert)

install(TARGETS moert EXPORT moertTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev)
install(FILES ${PROJECT_SOURCE_DIR}/capi/include/moert/moert.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/moert COMPONENT dev)
# The SWIG interface, so the Python package (bindings/python) can be built against an installed prefix.
install(FILES ${PROJECT_SOURCE_DIR}/bindings/swig/moert.i DESTINATION ${CMAKE_INSTALL_DATADIR}/moert/swig COMPONENT dev)
# Providers: opened with dlopen by SONAME, so no development symlink.
foreach(p cuda mpi)
  if(TARGET moert_${p})
    install(TARGETS moert_${p} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT ${p} NAMELINK_SKIP)
  endif()
endforeach()

# The CLI finds libmoert through a relative rpath, so any prefix works.
file(RELATIVE_PATH _bin_to_lib /${CMAKE_INSTALL_BINDIR} /${CMAKE_INSTALL_LIBDIR})
set_target_properties(moert_cli PROPERTIES INSTALL_RPATH "$ORIGIN/${_bin_to_lib}")
install(TARGETS moert_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
# moert-serve (built when cpp-httplib is found), beside moert, which runs it for `moert serve`.
if(TARGET moert_serve)
  set_target_properties(moert_serve PROPERTIES INSTALL_RPATH "$ORIGIN/${_bin_to_lib}")
  install(TARGETS moert_serve RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT serve)
endif()
# The default model, without the test reference.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/samples/models/moert-tiny-coder/ DESTINATION ${MOERT_INSTALL_MODELDIR}
  COMPONENT runtime PATTERN reference.safetensors EXCLUDE)
# DeepSeek-V3's tokenizer, which `moert make-model` writes beside checkpoints of V3's vocabulary.
install(FILES ${PROJECT_SOURCE_DIR}/tests/data/tokenizer-deepseek-v3/tokenizer.json
              ${PROJECT_SOURCE_DIR}/tests/data/tokenizer-deepseek-v3/tokenizer_config.json
  DESTINATION ${CMAKE_INSTALL_DATADIR}/moert/tokenizers/deepseek-v3 COMPONENT runtime)

install(EXPORT moertTargets NAMESPACE moert:: DESTINATION ${MOERT_INSTALL_CMAKEDIR} COMPONENT dev)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/moertConfig.cmake.in
  ${PROJECT_BINARY_DIR}/moertConfig.cmake INSTALL_DESTINATION ${MOERT_INSTALL_CMAKEDIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR MOERT_INSTALL_MODELDIR)
# Before 1.0 a minor version may break the API (as the SONAME's major does after it).
write_basic_package_version_file(${PROJECT_BINARY_DIR}/moertConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/moertConfig.cmake ${PROJECT_BINARY_DIR}/moertConfigVersion.cmake
  DESTINATION ${MOERT_INSTALL_CMAKEDIR} COMPONENT dev)

file(RELATIVE_PATH MOERT_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" MOERT_PC_TO_PREFIX "${MOERT_PC_TO_PREFIX}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/moert.pc.in ${PROJECT_BINARY_DIR}/moert.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/moert.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

# The build tree's own moert.pc (PKG_CONFIG_PATH=build/pkgconfig), used by the Go binding's tests.
configure_file(${CMAKE_CURRENT_LIST_DIR}/moert-build.pc.in ${PROJECT_BINARY_DIR}/pkgconfig/moert.pc @ONLY)
