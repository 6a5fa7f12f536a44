//! The Python package `ipcmem` (its extension module `ipcmem._ipcmem`): shared memory of both
//! kinds, zero-copy NumPy arrays, events, semaphores and garbage collection, bound with PyO3.
//!
//! Memory that other processes write is handed to Python (memoryviews, NumPy arrays) as raw
//! pointers and never viewed as `&[u8]` by Rust code here: see [`view`].

mod array;
mod convert;
mod errors;
mod ids;
mod isio;
mod memory;
mod stream;
mod sync;
mod view;

use pyo3::prelude::*;

/// The size of a memory page.
#[pyfunction]
fn page_size() -> usize {
    ipcmem::page_size()
}

#[pymodule]
fn _ipcmem(module: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(module)?;
    module.add_class::<ids::PyKey>()?;
    module.add_class::<ids::PyShmId>()?;
    module.add("PRIVATE", ids::PyKey(ipcmem::Key::PRIVATE))?;
    module.add_class::<memory::PySharedMemory>()?;
    module.add_class::<array::PySharedArray>()?;
    module.add_class::<sync::PyEvent>()?;
    module.add_class::<sync::PySemaphore>()?;
    module.add_class::<stream::PyStreamWriter>()?;
    module.add_class::<stream::PyStreamReader>()?;
    module.add_class::<stream::PyFrameInfo>()?;
    module.add_class::<view::Mapping>()?;
    module.add_class::<isio::PyIsioStream>()?;
    module.add_class::<isio::PyIsioReader>()?;
    module.add_function(wrap_pyfunction!(memory::shmrm, module)?)?;
    module.add_function(wrap_pyfunction!(sync::collect_garbage, module)?)?;
    module.add_function(wrap_pyfunction!(page_size, module)?)?;
    Ok(())
}
