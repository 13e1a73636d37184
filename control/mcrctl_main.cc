// mcrctl: command-line control of a running mcrd; see docs/REFERENCE.md.

#include "control/ctl.h"

int main(int argc, char** argv) { return mcr::control::RunMcrctl(argc, argv); }
