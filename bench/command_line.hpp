#pragma once
// Shared by the bench/ programs: each prints the command that reproduces its figures.
#include <cstdio>
#include <string>

inline void print_command(int argc, char** argv) {
  std::string command;
  for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
  std::printf("command: %s\n", command.c_str());
}
