# Write a C++ source file that defines `const char* const NAME` with the text
# of INPUT, so that the program carries the file inside its binary.
# Usage: cmake -DINPUT=file -DOUTPUT=file.cpp -DNAME=identifier -P embed_text.cmake
file(READ "${INPUT}" content)
set(delimiter "embedded_text")
string(FIND "${content}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains )${delimiter}\", which ends the C++ raw string")
endif()
file(WRITE "${OUTPUT}"
  "// Generated from ${INPUT} by cmake/embed_text.cmake; edit that file instead.\n"
  "namespace memobserve {\n"
  "extern const char* const ${NAME};\n"
  "const char* const ${NAME} = R\"${delimiter}(${content})${delimiter}\";\n"
  "}  // namespace memobserve\n")
