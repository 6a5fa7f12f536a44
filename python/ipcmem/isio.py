"""ImageStreamIO streams (milk, cacao): the files ``NAME.im.shm`` of ``$MILK_SHM_DIR``
(default ``/milk/shm``), byte-compatible with ImageStreamIO 2.00.

>>> import os, tempfile, numpy as np
>>> from ipcmem import isio
>>> milk = tempfile.mkdtemp()                                  # default: $MILK_SHM_DIR
>>> wfs = isio.create("wfs", np.float32, (120, 120), dir=milk)  # as milk makes it
>>> reader = isio.open("wfs", dir=milk).reader()               # claims a semaphore
>>> wfs.write(np.zeros((120, 120), np.float32))                # cnt0, and posts
1
>>> frame, info = reader.next(timeout=1.0)
>>> info.serial
1
>>> reader.close(); isio.remove("wfs", dir=milk); os.rmdir(milk)

Frames are NumPy arrays in Fortran order (x first), fresh copies checked against concurrent
writes; ``FrameInfo.serial`` is ``cnt0``.
"""

from ._ipcmem import Reader, Stream

open = Stream.open
create = Stream.create
remove = Stream.remove
list = Stream.list

__all__ = ["Reader", "Stream", "create", "list", "open", "remove"]
