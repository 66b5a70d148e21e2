"""Where the full datasets come from and how each file is recognised as genuine."""

from dataclasses import dataclass, field

ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class FileSpec:
    filename: str
    sha256: str  # of the file as published (the .gz)
    content_sha256: str | None = None  # of the decompressed IDX bytes, when known


@dataclass(frozen=True)
class Source:
    name: str
    files: dict  # role -> FileSpec
    mirrors: tuple  # base URLs, tried in order
    system_dirs: tuple = field(default=())  # read-only places a package may have put them
    num_classes: int = 10


def _idx_files(hashes, contents=None):
    names = (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    )
    contents = contents or (None,) * 4
    return {role: FileSpec(n, h, c) for role, n, h, c in zip(ROLES, names, hashes, contents)}


MNIST = Source(
    name="mnist",
    files=_idx_files(
        (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        )
    ),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
)

FASHION_MNIST = Source(
    name="fashion_mnist",
    files=_idx_files(
        (  # upstream .gz files (zalandoresearch/fashion-mnist)
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ),
        (  # the decompressed files: Debian's package re-compressed them, so its .gz differ
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    ),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
)

SOURCES = {s.name: s for s in (MNIST, FASHION_MNIST)}
