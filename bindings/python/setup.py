"""Builds moert.moert_native (SWIG over moert.h) for the Python running the build, against an installed
moert: MOERT_PREFIX=/its/prefix, else `pkg-config moert` (PKG_CONFIG_PATH for a private prefix). libmoert
and the provider libraries beside it are copied into the package, which finds them through an $ORIGIN
rpath (libmoert looks for its providers in its own folder), so the installed package needs neither
PYTHONPATH nor LD_LIBRARY_PATH. The metadata is in pyproject.toml."""
import glob
import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def _pkg_config_var(name):
    try:
        out = subprocess.run(["pkg-config", "--variable=" + name, "moert"], check=True, capture_output=True,
                             text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit("moert: no installed moert found (set MOERT_PREFIX, or PKG_CONFIG_PATH so that "
                         "`pkg-config moert` works): %s" % e)
    return out


def _locate():
    """(include dir, library dir, SWIG interface) of the moert to build against."""
    prefix = os.environ.get("MOERT_PREFIX")
    if prefix:
        include = os.path.join(prefix, "include")
        libs = [d for d in glob.glob(os.path.join(prefix, "lib*")) + glob.glob(os.path.join(prefix, "lib", "*-linux-gnu"))
                if glob.glob(os.path.join(d, "libmoert.so.*"))]
        if not libs:
            raise SystemExit("moert: no libmoert.so.* under %s/lib*" % prefix)
        libdir = libs[0]
        interface = os.path.join(prefix, "share", "moert", "swig", "moert.i")
    else:
        include, libdir, interface = (_pkg_config_var(v) for v in ("includedir", "libdir", "swiginterface"))
    # Building from the source tree: its interface file is the one that matches this package.
    if (HERE.parent / "swig" / "moert.i").exists():
        interface = str(HERE.parent / "swig" / "moert.i")
    for p in (os.path.join(include, "moert", "moert.h"), interface):
        if not os.path.exists(p):
            raise SystemExit("moert: %s not found" % p)
    return include, libdir, interface


class BuildNative(build_ext):
    def run(self):
        include, libdir, interface = _locate()
        tmp = Path(self.build_temp) / "swig"
        tmp.mkdir(parents=True, exist_ok=True)
        wrap = tmp / "moert_native_wrap.cxx"
        subprocess.run(["swig", "-python", "-c++", "-threads", "-doxygen", "-I" + include, "-outdir", str(tmp),
                        "-o", str(wrap), interface], check=True)
        for ext in self.extensions:
            ext.sources = [str(wrap)]
            ext.include_dirs.append(include)
            ext.library_dirs.append(libdir)
        super().run()
        pkg = Path(self.build_lib) / "moert"
        pkg.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tmp / "moert_native.py", pkg / "moert_native.py")
        # libmoert by its SONAME, and whatever providers sit beside it (CUDA, MPI).
        for name in ["libmoert.so.*"] + ["libmoert_%s.so.*" % p for p in ("cuda", "mpi")]:
            for f in sorted(glob.glob(os.path.join(libdir, name))):
                if f.count(".so.") == 1 and f.rsplit(".so.", 1)[1].isdigit():
                    shutil.copy(os.path.realpath(f), pkg / os.path.basename(f))


setup(
    ext_modules=[Extension("moert._moert_native", sources=[], libraries=["moert"], language="c++",
                           extra_compile_args=["-Wno-unused-parameter", "-Wno-missing-field-initializers"],
                           extra_link_args=["-Wl,-rpath,$ORIGIN"])],
    cmdclass={"build_ext": BuildNative},
)
