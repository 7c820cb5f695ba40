# Installs the systemd units and the default /etc/twoway/twoway.conf for the prefix given at
# install time (included by `cmake --install` through install(SCRIPT); TW_SRC and TW_TMP are
# set before it). DESTDIR is applied by file(INSTALL).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(unitdir /lib/systemd/system)
  set(confdir /etc/twoway)
else()
  set(unitdir ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
  set(confdir ${CMAKE_INSTALL_PREFIX}/etc/twoway)
endif()
file(MAKE_DIRECTORY ${TW_TMP})
file(GLOB units ${TW_SRC}/systemd/*.service ${TW_SRC}/systemd/*.timer)
foreach(unit ${units})
  get_filename_component(name ${unit} NAME)
  file(READ ${unit} text)
  string(REPLACE "/usr/bin/twoway" "${CMAKE_INSTALL_PREFIX}/bin/twoway" text "${text}")
  file(WRITE ${TW_TMP}/${name} "${text}")
  file(INSTALL ${TW_TMP}/${name} DESTINATION ${unitdir}
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endforeach()
if(NOT EXISTS "$ENV{DESTDIR}${confdir}/twoway.conf")
  file(INSTALL ${TW_SRC}/examples/twoway.conf DESTINATION ${confdir}
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
else()
  message(STATUS "Keeping: $ENV{DESTDIR}${confdir}/twoway.conf")
endif()
