# Obtains pocketfft's header-only C++ library (BSD-3-Clause) at configure time.
#
# pocketfft is a dependency, never copied into this repository. By default the header is taken
# from a pinned package release that the Python package index serves: the source distribution of
# gemmi 0.7.5 carries it at include/gemmi/third_party/pocketfft_hdronly.h. pip fetches the archive
# by name and version; both the archive and the header are checked against SHA-256 sums.
# Offline and distribution builds set VOXSCALE_POCKETFFT_DIR to a folder holding the header.

set(VOXSCALE_POCKETFFT_DIR "" CACHE PATH
    "Folder containing pocketfft_hdronly.h; when set, nothing is downloaded")

set(_vs_sdist_name "gemmi")
set(_vs_sdist_version "0.7.5")
set(_vs_sdist_sha256 "3328f26c8a8a0ef6a7fc8bb28e167818e324e4239dd4197d6b6066ae2b6315fe")
set(_vs_header_sha256 "b15ca29cf47025e76c966d0c5a061e9b56e3e2b312cb05e993ee696f8d9812e5")
set(_vs_header_in_sdist "gemmi-${_vs_sdist_version}/include/gemmi/third_party/pocketfft_hdronly.h")

function(_voxscale_sha256_matches file expected out)
  file(SHA256 "${file}" _actual)
  if(_actual STREQUAL expected)
    set(${out} TRUE PARENT_SCOPE)
  else()
    set(${out} FALSE PARENT_SCOPE)
  endif()
endfunction()

if(VOXSCALE_POCKETFFT_DIR)
  set(_vs_header "${VOXSCALE_POCKETFFT_DIR}/pocketfft_hdronly.h")
  if(NOT EXISTS "${_vs_header}")
    message(FATAL_ERROR "VOXSCALE_POCKETFFT_DIR=${VOXSCALE_POCKETFFT_DIR} holds no pocketfft_hdronly.h")
  endif()
  _voxscale_sha256_matches("${_vs_header}" "${_vs_header_sha256}" _vs_ok)
  if(NOT _vs_ok)
    message(WARNING "pocketfft_hdronly.h in ${VOXSCALE_POCKETFFT_DIR} is not the tested version "
                    "(SHA-256 differs); building with it anyway")
  endif()
  set(VOXSCALE_POCKETFFT_INCLUDE_DIR "${VOXSCALE_POCKETFFT_DIR}")
else()
  set(_vs_dir "${CMAKE_BINARY_DIR}/_deps/pocketfft")
  set(_vs_header "${_vs_dir}/include/pocketfft_hdronly.h")
  set(_vs_ok FALSE)
  if(EXISTS "${_vs_header}")
    _voxscale_sha256_matches("${_vs_header}" "${_vs_header_sha256}" _vs_ok)
  endif()
  if(NOT _vs_ok)
    find_package(Python COMPONENTS Interpreter REQUIRED)
    set(_vs_archive "${_vs_dir}/download/${_vs_sdist_name}-${_vs_sdist_version}.tar.gz")
    if(NOT EXISTS "${_vs_archive}")
      message(STATUS "voxscale: fetching pocketfft from the ${_vs_sdist_name} ${_vs_sdist_version} "
                     "source distribution with pip")
      execute_process(
        COMMAND "${Python_EXECUTABLE}" -m pip download --no-deps --no-binary ${_vs_sdist_name}
                --disable-pip-version-check -d "${_vs_dir}/download"
                "${_vs_sdist_name}==${_vs_sdist_version}"
        RESULT_VARIABLE _vs_rc OUTPUT_VARIABLE _vs_out ERROR_VARIABLE _vs_err)
      if(NOT _vs_rc EQUAL 0 OR NOT EXISTS "${_vs_archive}")
        message(FATAL_ERROR "voxscale: could not download ${_vs_sdist_name}==${_vs_sdist_version} "
                "(needed for pocketfft_hdronly.h): ${_vs_err}\n"
                "Offline? Pass -DVOXSCALE_POCKETFFT_DIR=/folder/with/pocketfft_hdronly.h "
                "(with pip: -Ccmake.define.VOXSCALE_POCKETFFT_DIR=...)")
      endif()
    endif()
    _voxscale_sha256_matches("${_vs_archive}" "${_vs_sdist_sha256}" _vs_ok)
    if(NOT _vs_ok)
      file(REMOVE "${_vs_archive}")
      message(FATAL_ERROR "voxscale: SHA-256 of ${_vs_archive} does not match the pinned release")
    endif()
    file(ARCHIVE_EXTRACT INPUT "${_vs_archive}" DESTINATION "${_vs_dir}/extract"
         PATTERNS "${_vs_header_in_sdist}")
    file(MAKE_DIRECTORY "${_vs_dir}/include")
    file(COPY_FILE "${_vs_dir}/extract/${_vs_header_in_sdist}" "${_vs_header}")
    _voxscale_sha256_matches("${_vs_header}" "${_vs_header_sha256}" _vs_ok)
    if(NOT _vs_ok)
      message(FATAL_ERROR "voxscale: SHA-256 of the extracted pocketfft_hdronly.h does not match")
    endif()
  endif()
  set(VOXSCALE_POCKETFFT_INCLUDE_DIR "${_vs_dir}/include")
endif()

# The licence is the header's leading comment; it travels with every installed copy.
file(READ "${VOXSCALE_POCKETFFT_INCLUDE_DIR}/pocketfft_hdronly.h" _vs_text LIMIT 4096)
string(FIND "${_vs_text}" "*/" _vs_end)
string(SUBSTRING "${_vs_text}" 0 ${_vs_end} _vs_licence)
file(WRITE "${CMAKE_BINARY_DIR}/LICENSE-pocketfft.txt" "${_vs_licence}*/\n")
message(STATUS "voxscale: pocketfft header in ${VOXSCALE_POCKETFFT_INCLUDE_DIR}")
