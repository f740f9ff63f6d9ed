/* SPDX-License-Identifier: Apache-2.0 */
/* The app of the MarbleRun hello sample: prints the arguments and the environment variable the
 * Coordinator provisioned (manifest.json: Parameters.Argv, Parameters.Env.HELLO_WORLD), and
 * whether it got its Marble certificate (MARBLE_PREDEFINED_*, marblerun.md §2). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
    for (int i = 0; i < argc; i++)
        printf("argv[%d]: %s\n", i, argv[i]);
    const char* hello = getenv("HELLO_WORLD");
    printf("HELLO_WORLD: %s\n", hello ? hello : "(not set)");
    printf("Marble certificate: %s\n",
           getenv("MARBLE_PREDEFINED_MARBLE_CERTIFICATE_CHAIN") ? "provisioned" : "(none)");
    return hello ? 0 : 1;
}
