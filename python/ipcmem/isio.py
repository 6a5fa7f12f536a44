"""ImageStreamIO streams (milk, cacao): the files ``NAME.im.shm`` of ``$MILK_SHM_DIR``
(default ``/milk/shm``), byte-compatible with ImageStreamIO 2.00.

>>> import numpy as np
>>> from ipcmem import isio
>>> wfs = isio.create("wfs", np.float32, (120, 120), dir="/tmp/milk")   # as milk makes it
>>> wfs.write(np.zeros((120, 120), np.float32))                        # cnt0, and posts
1
>>> reader = isio.open("wfs", dir="/tmp/milk").reader()                # claims a semaphore
>>> frame, info = wfs.read()                                           # the latest frame

Frames are NumPy arrays in Fortran order (x first), fresh copies checked against concurrent
writes; ``FrameInfo.serial`` is ``cnt0``.
"""

from ._ipcmem import Reader, Stream

open = Stream.open
create = Stream.create
remove = Stream.remove
list = Stream.list

__all__ = ["Reader", "Stream", "create", "list", "open", "remove"]
