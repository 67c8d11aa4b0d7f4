# Installation layout and the Debian package (CPack). Included from the top-level
# CMakeLists.txt, which installs the binary and /etc/pooled/pooled.yaml itself.
include(GNUInstallDirs)

install(FILES ${CMAKE_SOURCE_DIR}/systemd/pooled.service ${CMAKE_SOURCE_DIR}/systemd/pooled.socket
        DESTINATION lib/systemd/system)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/pooled.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pooled)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "pooled maintainers <pooled@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "local HTTP/1.1 connection-pooling proxy")
set(CPACK_PACKAGE_DESCRIPTION
    "pooled keeps warm upstream connections for apps that open a new one per request.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
# Runtime libraries found by dpkg-shlibdeps from the binary itself.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON) # debug info stays in the build tree
set(CPACK_DEBIAN_PACKAGE_DEPENDS "ca-certificates")
# /etc/pooled/pooled.yaml is a conffile: an upgrade keeps the administrator's edits.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_SOURCE_DIR}/packaging/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
