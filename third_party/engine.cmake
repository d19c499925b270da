# Fills third_party/stable-diffusion.cpp with the pinned engine source, once.
#
# The source is the stable-diffusion.cpp (with ggml) that the stable-diffusion-cpp-python sdist
# carries under vendor/: upstream master of April-May 2026 (docs/engine-patches.md says how far that
# is known). It is fetched with pip by package name, checked against a pinned sha256, unpacked (that
# folder only) and patched with third_party/patches/*.patch, a stacked series that applies in order
# with no offset or fuzz (tests/test_engine_source.py). A stamp records the archive hash and the
# patch hashes, so editing a patch re-unpacks a clean tree (and rebuilds the engine). A tree whose
# stamp matches (the source distribution's) needs neither pip nor patch.

set(SDCPP_ENGINE_PACKAGE "stable-diffusion-cpp-python==0.4.7")
set(SDCPP_ENGINE_SHA256 "998d1957260dd5ae4e18a8acc0c14b0a8757aaa9f96515197b6d5bbf46df9282")
set(SDCPP_ENGINE_MEMBER "stable_diffusion_cpp_python-0.4.7/vendor/stable-diffusion.cpp")

# GNU patch, found before anything is downloaded or removed. The options below are GNU's; macOS
# ships a BSD patch, and Homebrew's GNU patch is called gpatch.
function(sdcpp_find_gnu_patch out)
    find_program(SDCPP_PATCH_EXE NAMES gpatch patch)
    set(fix "Install GNU patch (Debian/Ubuntu: apt install patch; Fedora: dnf install patch; "
            "macOS: brew install gpatch) and run the build again.")
    if(NOT SDCPP_PATCH_EXE)
        message(FATAL_ERROR "sdcpp: the build applies third_party/patches/ with GNU patch, and no "
                            "'patch' or 'gpatch' program is on PATH. ${fix}")
    endif()
    execute_process(COMMAND "${SDCPP_PATCH_EXE}" --version
                    OUTPUT_VARIABLE version ERROR_VARIABLE version RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0 OR NOT version MATCHES "GNU patch")
        string(REGEX REPLACE "\n.*" "" first_line "${version}")
        message(FATAL_ERROR "sdcpp: the build applies third_party/patches/ with GNU patch, and "
                            "${SDCPP_PATCH_EXE} is not GNU patch ('${first_line}'). ${fix} "
                            "(If it is installed elsewhere: CMAKE_ARGS=\"-DSDCPP_PATCH_EXE=/path/to/gnu/patch\")")
    endif()
    set(${out} "${SDCPP_PATCH_EXE}" PARENT_SCOPE)
endfunction()

function(sdcpp_fetch_engine dest)
    file(GLOB patches "${CMAKE_CURRENT_SOURCE_DIR}/third_party/patches/*.patch")
    list(SORT patches)
    set(stamp_text "${SDCPP_ENGINE_SHA256}\n")
    foreach(p IN LISTS patches)
        file(SHA256 "${p}" h)
        get_filename_component(n "${p}" NAME)
        string(APPEND stamp_text "${n} ${h}\n")
    endforeach()
    set(stamp "${dest}/.sdcpp-stamp")
    if(EXISTS "${stamp}")
        file(READ "${stamp}" old)
        if(old STREQUAL stamp_text)
            return()
        endif()
    endif()

    sdcpp_find_gnu_patch(patch_exe)
    set(download "${CMAKE_BINARY_DIR}/engine-download")
    set(archive "${SDCPP_ENGINE_ARCHIVE}")
    if(NOT archive)
        file(GLOB archive "${download}/*.tar.gz")
    endif()
    if(NOT archive)
        message(STATUS "sdcpp: fetching ${SDCPP_ENGINE_PACKAGE} (engine source) with pip")
        # --no-build-isolation: pip only reads the sdist's metadata, with the scikit-build-core
        # already in this build environment, instead of installing a second one.
        execute_process(
            COMMAND "${Python_EXECUTABLE}" -m pip download --no-deps --no-binary :all:
                    --no-build-isolation --disable-pip-version-check -q
                    -d "${download}" "${SDCPP_ENGINE_PACKAGE}"
            RESULT_VARIABLE rc)
        if(NOT rc EQUAL 0)
            message(FATAL_ERROR
                "sdcpp: could not download ${SDCPP_ENGINE_PACKAGE} (the engine's source) with pip "
                "(pip's error is above). The build needs network access to the package index for it, "
                "unless it is given: download it where there is network "
                "(pip download --no-deps --no-binary :all: ${SDCPP_ENGINE_PACKAGE}) and pass "
                "CMAKE_ARGS=\"-DSDCPP_ENGINE_ARCHIVE=/path/to/stable_diffusion_cpp_python-0.4.7.tar.gz\", "
                "or build against a checkout with -DSDCPP_ENGINE_DIR=/path/to/stable-diffusion.cpp.")
        endif()
        file(GLOB archive "${download}/*.tar.gz")
    endif()
    file(SHA256 "${archive}" actual)
    if(NOT actual STREQUAL SDCPP_ENGINE_SHA256)
        message(FATAL_ERROR "sdcpp: ${archive} has sha256 ${actual}, expected ${SDCPP_ENGINE_SHA256}")
    endif()

    set(partial "${dest}.partial")
    file(REMOVE_RECURSE "${partial}" "${dest}")
    file(ARCHIVE_EXTRACT INPUT "${archive}" DESTINATION "${partial}"
         PATTERNS "${SDCPP_ENGINE_MEMBER}/*")

    foreach(p IN LISTS patches)
        # --no-backup-if-mismatch: a patch that needed an offset or fuzz would otherwise leave
        # .orig files in the tree, and the source distribution would ship them.
        execute_process(
            COMMAND "${patch_exe}" -p1 --batch --forward --quiet --no-backup-if-mismatch -i "${p}"
            WORKING_DIRECTORY "${partial}/${SDCPP_ENGINE_MEMBER}"
            RESULT_VARIABLE rc)
        if(NOT rc EQUAL 0)
            message(FATAL_ERROR "sdcpp: patch ${p} does not apply to ${SDCPP_ENGINE_PACKAGE}")
        endif()
    endforeach()
    file(RENAME "${partial}/${SDCPP_ENGINE_MEMBER}" "${dest}")
    file(REMOVE_RECURSE "${partial}")
    file(WRITE "${stamp}" "${stamp_text}")
endfunction()
