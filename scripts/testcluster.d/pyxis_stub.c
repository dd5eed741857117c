/*
 * Stand-in for the pyxis SPANK plugin on the test cluster.
 *
 * Production launch scripts pass pyxis' --container-* options to srun. The
 * test cluster has no container runtime, so this plugin only makes Slurm
 * accept those options (with or without argument, as pyxis does) and ignores
 * them: the job then runs directly on the host.
 *
 * Build: gcc -shared -fPIC -o pyxis_stub.so pyxis_stub.c  (needs libslurm-dev)
 */
#include <stddef.h>
#include <slurm/spank.h>

SPANK_PLUGIN(pyxis_stub, 1);

static int ignore_option(int val, const char *optarg, int remote)
{
	(void)val;
	(void)optarg;
	(void)remote;
	return ESPANK_SUCCESS;
}

#define WITH_ARG(name, arginfo) \
	{ name, arginfo, "accepted and ignored (pyxis stand-in)", 1, 0, ignore_option }
#define FLAG(name) \
	{ name, NULL, "accepted and ignored (pyxis stand-in)", 0, 0, ignore_option }

static struct spank_option options[] = {
	WITH_ARG("container-image", "[USER@][REGISTRY#]IMAGE[:TAG]|PATH"),
	WITH_ARG("container-mounts", "SRC:DST[:FLAGS][,SRC:DST...]"),
	WITH_ARG("container-workdir", "PATH"),
	WITH_ARG("container-name", "NAME[:FLAG]"),
	WITH_ARG("container-save", "PATH"),
	WITH_ARG("container-env", "NAME[,NAME...]"),
	FLAG("container-mount-home"),
	FLAG("no-container-mount-home"),
	FLAG("container-remap-root"),
	FLAG("no-container-remap-root"),
	FLAG("container-entrypoint"),
	FLAG("no-container-entrypoint"),
	FLAG("container-writable"),
	FLAG("container-readonly"),
	SPANK_OPTIONS_TABLE_END
};

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;

	/*
	 * slurmd and slurmctld load the plugin stack too but have no options
	 * to register; only the contexts that parse or forward options
	 * (srun/sbatch/salloc and slurmstepd) need them.
	 */
	switch (spank_context()) {
	case S_CTX_LOCAL:
	case S_CTX_REMOTE:
	case S_CTX_ALLOCATOR:
		break;
	default:
		return ESPANK_SUCCESS;
	}

	for (struct spank_option *opt = options; opt->name != NULL; opt++) {
		spank_err_t rc = spank_option_register(sp, opt);
		if (rc != ESPANK_SUCCESS) {
			slurm_error("pyxis_stub: cannot register --%s: %s",
				    opt->name, spank_strerror(rc));
			return -1;
		}
	}
	return ESPANK_SUCCESS;
}
