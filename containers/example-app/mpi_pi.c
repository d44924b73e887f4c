/* mpi-pi: a small MPI application for the example image (containers/example-app).
 *
 * Every rank integrates its share of 4/(1+x^2) over [0,1] (midpoint rule), the shares are
 * summed on rank 0 with MPI_Reduce, and rank 0 writes one line per rank (rank, host name)
 * and the result to the file named by the first argument:
 *
 *   mpi-pi pi.txt [intervals]
 *
 * Host names are gathered with MPI_Gather, so the output shows on which nodes the ranks ran.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOST_LEN 64

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 2) {
        if (rank == 0) fprintf(stderr, "usage: mpi-pi OUTPUT [INTERVALS]\n");
        MPI_Finalize();
        return 2;
    }
    long intervals = argc > 2 ? atol(argv[2]) : 10000000L;
    double width = 1.0 / (double)intervals, part = 0.0;
    for (long i = rank; i < intervals; i += size) {
        double x = (i + 0.5) * width;
        part += 4.0 / (1.0 + x * x);
    }
    part *= width;
    double pi = 0.0;
    MPI_Reduce(&part, &pi, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);

    char host[HOST_LEN] = {0};
    int len = 0;
    MPI_Get_processor_name(host, &len);
    char *hosts = rank == 0 ? malloc((size_t)size * HOST_LEN) : NULL;
    MPI_Gather(host, HOST_LEN, MPI_CHAR, hosts, HOST_LEN, MPI_CHAR, 0, MPI_COMM_WORLD);
    int code = 0;
    if (rank == 0) {
        FILE *out = fopen(argv[1], "w");
        if (out == NULL) {
            perror(argv[1]);
            code = 1;
        } else {
            for (int r = 0; r < size; r++) fprintf(out, "rank\t%d\t%s\n", r, hosts + r * HOST_LEN);
            fprintf(out, "pi\t%.12f\n", pi);
            fclose(out);
        }
        free(hosts);
    }
    MPI_Finalize();
    return code;
}
