/*
 * Rule `gc_mpi`: base composition of all samples, computed by MPI ranks spread over the
 * nodes of one AWS Batch multi-node job.
 *
 * usage: mpi_gc OUTPUT FASTA...
 * Rank r counts the bases of every size-th sequence (r, r+size, ...); MPI_Reduce sums
 * the counts on rank 0, which also gathers where each rank ran (AWS_BATCH_JOB_NODE_INDEX
 * and the host name) and writes one TSV: a line per rank, then the totals.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { A, C, G, T, OTHER, NCOUNTS };
#define HOSTLEN 64

static void count_file(const char *path, int rank, int size, long *counts, long *seq) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "rank %d: cannot open %s\n", rank, path);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '>') {
            (*seq)++;
            continue;
        }
        if (*seq < 0 || *seq % size != rank) continue;
        for (char *p = line; *p && *p != '\n'; p++) {
            switch (*p) {
                case 'A': counts[A]++; break;
                case 'C': counts[C]++; break;
                case 'G': counts[G]++; break;
                case 'T': counts[T]++; break;
                default: counts[OTHER]++;
            }
        }
    }
    fclose(f);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 3) {
        if (rank == 0) fprintf(stderr, "usage: %s OUTPUT FASTA...\n", argv[0]);
        MPI_Finalize();
        return 2;
    }

    long counts[NCOUNTS] = {0}, totals[NCOUNTS] = {0}, seq = -1;
    for (int i = 2; i < argc; i++) count_file(argv[i], rank, size, counts, &seq);
    MPI_Reduce(counts, totals, NCOUNTS, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);

    const char *node_env = getenv("AWS_BATCH_JOB_NODE_INDEX");
    int node = node_env ? atoi(node_env) : -1;
    char host[HOSTLEN] = {0};
    gethostname(host, HOSTLEN - 1);
    int *nodes = NULL;
    long *all_counts = NULL;
    char *hosts = NULL;
    if (rank == 0) {
        nodes = malloc(sizeof(int) * size);
        all_counts = malloc(sizeof(long) * NCOUNTS * size);
        hosts = malloc(HOSTLEN * size);
    }
    MPI_Gather(&node, 1, MPI_INT, nodes, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Gather(counts, NCOUNTS, MPI_LONG, all_counts, NCOUNTS, MPI_LONG, 0, MPI_COMM_WORLD);
    MPI_Gather(host, HOSTLEN, MPI_CHAR, hosts, HOSTLEN, MPI_CHAR, 0, MPI_COMM_WORLD);

    if (rank == 0) {
        FILE *out = fopen(argv[1], "w");
        if (!out) {
            fprintf(stderr, "cannot write %s\n", argv[1]);
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
        fprintf(out, "rank\tnode\thost\tA\tC\tG\tT\tother\n");
        for (int r = 0; r < size; r++) {
            long *c = all_counts + r * NCOUNTS;
            fprintf(out, "%d\t%d\t%s\t%ld\t%ld\t%ld\t%ld\t%ld\n", r, nodes[r], hosts + r * HOSTLEN,
                    c[A], c[C], c[G], c[T], c[OTHER]);
        }
        fprintf(out, "total\t-\t-\t%ld\t%ld\t%ld\t%ld\t%ld\n", totals[A], totals[C], totals[G],
                totals[T], totals[OTHER]);
        fclose(out);
        printf("%d ranks counted %ld bases\n", size,
               totals[A] + totals[C] + totals[G] + totals[T] + totals[OTHER]);
    }
    MPI_Finalize();
    return 0;
}
