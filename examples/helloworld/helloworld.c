/* SPDX-License-Identifier: Apache-2.0 */
/* The smallest app for `moat run`: prints a greeting. */
#include <stdio.h>

int main(void) {
    printf("Hello, world\n");
    return 0;
}
