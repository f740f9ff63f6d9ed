/* A Marble's app for tests/test_premain.py: prints its argv, the variables the tests look for
 * and the files named in MARBLE_APP_FILES (colon-separated), and with argv[1] "spawn" runs
 * itself once more as "child" (to show that a child does not activate again). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char** argv) {
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    const char* vars[] = {"HELLO_WORLD", "LD_PRELOAD", "EDG_MARBLE_TYPE",
                          "MARBLE_PREDEFINED_MARBLE_CERTIFICATE_CHAIN"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char* v = getenv(vars[i]);
        printf("env %s=%s\n", vars[i], v ? (strlen(v) > 60 ? "(long)" : v) : "(unset)");
    }
    const char* files = getenv("MARBLE_APP_FILES");
    if (files) {
        char* all = strdup(files);
        for (char* f = strtok(all, ":"); f; f = strtok(NULL, ":")) {
            FILE* fp      = fopen(f, "r");
            char buf[256] = {0};
            if (!fp) {
                printf("file %s: cannot open\n", f);
                continue;
            }
            size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
            fclose(fp);
            int binary = 0;
            for (size_t i = 0; i < n; i++)
                binary |= (buf[i] < 0x20 && buf[i] != '\n') || (unsigned char)buf[i] >= 0x7f;
            if (binary) { /* keys: as hex */
                printf("file %s=hex:", f);
                for (size_t i = 0; i < n; i++)
                    printf("%02x", (unsigned char)buf[i]);
                printf(" (%zu bytes)\n", n);
                continue;
            }
            buf[strcspn(buf, "\n")] = '\0';
            printf("file %s=%s (%zu bytes)\n", f, buf, n);
        }
        free(all);
    }
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "spawn") == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            execl("/proc/self/exe", "child", "child", (char*)NULL);
            _exit(127);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        printf("child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    return 0;
}
