//! The `hogsvm._hogsvm` extension module: a thin layer over the `hogsvm` crate for the Python
//! package in `py/hogsvm/` (which does scikit-image's argument handling and dtype rules). The
//! library knows nothing of Python; this crate only converts arrays and errors.

use std::path::PathBuf;

use hogsvm::data::Dataset;
use hogsvm::hog::{visualize, Hog, HogParams, ImageRef, Pixels};
use hogsvm::model::AnyModel;
use hogsvm::pipeline::ClassicalConfig;
use numpy::ndarray::{Array2, ArrayView3};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray3, PyReadonlyArray4};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A library error as Python's `ValueError` (what scikit-image raises for bad arguments).
fn value_error(e: hogsvm::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn hog_of(
    orientations: usize,
    cell: (usize, usize),
    block: (usize, usize),
    block_norm: &str,
    transform_sqrt: bool,
) -> PyResult<Hog> {
    let params = HogParams::default()
        .orientations(orientations)
        .cell(cell.0, cell.1)
        .block(block.0, block.1)
        .block_norm(block_norm.parse().map_err(value_error)?)
        .transform_sqrt(transform_sqrt);
    Hog::new(params).map_err(value_error)
}

/// One image, `(rows, cols, channels)`, C-contiguous, of a dtype the core takes.
#[derive(FromPyObject)]
enum Image<'py> {
    U8(PyReadonlyArray3<'py, u8>),
    F32(PyReadonlyArray3<'py, f32>),
    F64(PyReadonlyArray3<'py, f64>),
}

fn image_ref<'a, T>(
    a: &'a ArrayView3<'a, T>,
    wrap: fn(&'a [T]) -> Pixels<'a>,
) -> PyResult<ImageRef<'a>> {
    let (r, c, ch) = a.dim();
    let s = a
        .as_slice()
        .ok_or_else(|| PyValueError::new_err("image must be C-contiguous"))?;
    ImageRef::new(wrap(s), r, c, ch).map_err(value_error)
}

/// HOG of one image: the feature vector (float32) and, with `visualize`, the HOG image
/// (float64, `rows x cols`).
#[pyfunction]
#[pyo3(signature = (image, orientations, pixels_per_cell, cells_per_block, block_norm, transform_sqrt, visualize))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn hog<'py>(
    py: Python<'py>,
    image: Image<'py>,
    orientations: usize,
    pixels_per_cell: (usize, usize),
    cells_per_block: (usize, usize),
    block_norm: &str,
    transform_sqrt: bool,
    visualize: bool,
) -> PyResult<(Bound<'py, PyArray1<f32>>, Option<Bound<'py, PyArray2<f64>>>)> {
    let hog = hog_of(
        orientations,
        pixels_per_cell,
        cells_per_block,
        block_norm,
        transform_sqrt,
    )?;
    let run = |im: ImageRef<'_>| -> PyResult<(Vec<f32>, Option<visualize::HogImage>)> {
        let f = hog.compute(im).map_err(value_error)?;
        let v = if visualize {
            Some(visualize::hog_image(&hog, im).map_err(value_error)?)
        } else {
            None
        };
        Ok((f, v))
    };
    let (features, vis) = match &image {
        Image::U8(a) => run(image_ref(&a.as_array(), Pixels::U8)?)?,
        Image::F32(a) => run(image_ref(&a.as_array(), Pixels::F32)?)?,
        Image::F64(a) => run(image_ref(&a.as_array(), Pixels::F64)?)?,
    };
    let vis = match vis {
        Some(v) => Some(
            Array2::from_shape_vec((v.rows, v.cols), v.data)
                .map_err(|e| PyValueError::new_err(e.to_string()))?
                .into_pyarray(py),
        ),
        None => None,
    };
    Ok((features.into_pyarray(py), vis))
}

/// A batch, `(n, rows, cols, channels)`, C-contiguous.
#[derive(FromPyObject)]
enum Batch<'py> {
    U8(PyReadonlyArray4<'py, u8>),
    F32(PyReadonlyArray4<'py, f32>),
    F64(PyReadonlyArray4<'py, f64>),
}

fn batch_refs<'a, T>(
    a: &'a numpy::ndarray::ArrayView4<'a, T>,
    wrap: fn(&'a [T]) -> Pixels<'a>,
) -> PyResult<Vec<ImageRef<'a>>> {
    let (n, r, c, ch) = a.dim();
    let s = a
        .as_slice()
        .ok_or_else(|| PyValueError::new_err("images must be C-contiguous"))?;
    let per = r * c * ch;
    (0..n)
        .map(|i| ImageRef::new(wrap(&s[i * per..(i + 1) * per]), r, c, ch).map_err(value_error))
        .collect()
}

/// HOG of every image of a batch, one row each (float32), computed in parallel on `n_jobs`
/// threads (all cores when `None`) with the GIL released. The rows do not depend on `n_jobs`.
#[pyfunction]
#[pyo3(signature = (images, orientations, pixels_per_cell, cells_per_block, block_norm, transform_sqrt, n_jobs))]
#[allow(clippy::too_many_arguments)]
fn hog_batch<'py>(
    py: Python<'py>,
    images: Batch<'py>,
    orientations: usize,
    pixels_per_cell: (usize, usize),
    cells_per_block: (usize, usize),
    block_norm: &str,
    transform_sqrt: bool,
    n_jobs: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let hog = hog_of(
        orientations,
        pixels_per_cell,
        cells_per_block,
        block_norm,
        transform_sqrt,
    )?;
    let pool = match n_jobs {
        Some(0) => return Err(PyValueError::new_err("n_jobs must be at least 1")),
        Some(n) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| PyValueError::new_err(e.to_string()))?,
        ),
        None => None,
    };
    let views = (&images, pool);
    let out = match views.0 {
        Batch::U8(a) => {
            let a = a.as_array();
            let refs = batch_refs(&a, Pixels::U8)?;
            compute(py, &hog, &refs, views.1.as_ref())
        }
        Batch::F32(a) => {
            let a = a.as_array();
            let refs = batch_refs(&a, Pixels::F32)?;
            compute(py, &hog, &refs, views.1.as_ref())
        }
        Batch::F64(a) => {
            let a = a.as_array();
            let refs = batch_refs(&a, Pixels::F64)?;
            compute(py, &hog, &refs, views.1.as_ref())
        }
    }?;
    Ok(out.into_pyarray(py))
}

fn compute(
    py: Python<'_>,
    hog: &Hog,
    refs: &[ImageRef<'_>],
    pool: Option<&rayon::ThreadPool>,
) -> PyResult<Array2<f32>> {
    py.detach(|| match pool {
        Some(p) => p.install(|| hog.compute_batch(refs)),
        None => hog.compute_batch(refs),
    })
    .map_err(value_error)
}

/// `(n, rows, cols)` uint8 images (and labels, when training) as a dataset of `class_names`.
fn dataset(
    images: &PyReadonlyArray3<'_, u8>,
    labels: Vec<u32>,
    class_names: Vec<String>,
) -> PyResult<Dataset> {
    let a = images.as_array();
    let (n, rows, cols) = a.dim();
    let pixels = a
        .as_slice()
        .ok_or_else(|| PyValueError::new_err("images must be C-contiguous"))?
        .to_vec();
    let labels = if labels.is_empty() {
        vec![0; n]
    } else {
        labels
    };
    if labels.len() != n {
        return Err(PyValueError::new_err(format!(
            "{} labels for {n} images",
            labels.len()
        )));
    }
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= class_names.len()) {
        return Err(PyValueError::new_err(format!(
            "label {l} is not below the {} classes",
            class_names.len()
        )));
    }
    Ok(Dataset {
        rows,
        cols,
        pixels,
        labels,
        class_names,
        sources: (0..n).map(|i| format!("array#{i}")).collect(),
    })
}

/// A model of either kind, from a file or trained from Python; used through the library's
/// `Classifier` trait.
#[pyclass(name = "Model", module = "hogsvm._hogsvm", frozen)]
struct PyModel {
    inner: AnyModel,
}

impl PyModel {
    fn images(&self, images: &PyReadonlyArray3<'_, u8>) -> PyResult<Dataset> {
        let m = self.inner.classifier();
        let mut ds = dataset(images, Vec::new(), m.class_names().to_vec())?;
        if let Some((w, h)) = m.load_resize() {
            ds = ds.resized(w, h);
        }
        Ok(ds)
    }
}

#[pymethods]
impl PyModel {
    /// `classical` or `cnn`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.classifier().kind()
    }

    /// Class names, in label order.
    #[getter]
    fn class_names(&self) -> Vec<String> {
        self.inner.classifier().class_names().to_vec()
    }

    /// `(rows, cols)` of the images the model describes.
    #[getter]
    fn input_shape(&self) -> (usize, usize) {
        let i = self.inner.classifier().input();
        (i.rows, i.cols)
    }

    /// Label index of each of `images` (`(n, rows, cols)` uint8), as `hogsvm predict` gives it.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArray3<'py, u8>,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let ds = self.images(&images)?;
        let m = self.inner.classifier();
        let p = py.detach(|| m.predict(&ds)).map_err(value_error)?;
        Ok(p.into_pyarray(py))
    }

    /// Scores, `(n, classes)`: the SVM's decision values (one column for two classes) or the
    /// CNN's probabilities.
    fn scores<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArray3<'py, u8>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let ds = self.images(&images)?;
        let m = self.inner.classifier();
        let s = py.detach(|| m.scores(&ds)).map_err(value_error)?;
        Ok(s.into_pyarray(py))
    }

    /// Write the model file (what `hogsvm train` writes), atomically.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        self.inner.classifier().save(&path).map_err(value_error)
    }
}

/// Open a model file of either kind.
#[pyfunction]
fn load(path: PathBuf) -> PyResult<PyModel> {
    let inner = hogsvm::model::load_any(&path).map_err(value_error)?;
    Ok(PyModel { inner })
}

/// Train the classical pipeline on `(n, rows, cols)` uint8 images with label indices into
/// `class_names`; `settings` are `ClassicalConfig::set` keys and values (`hogsvm train`'s flags).
#[pyfunction]
fn train_classical(
    py: Python<'_>,
    images: PyReadonlyArray3<'_, u8>,
    labels: Vec<u32>,
    class_names: Vec<String>,
    settings: Vec<(String, String)>,
) -> PyResult<PyModel> {
    if labels.is_empty() {
        return Err(PyValueError::new_err("no training images"));
    }
    let ds = dataset(&images, labels, class_names)?;
    let cfg = ClassicalConfig::default()
        .with(&settings)
        .map_err(value_error)?;
    let (m, _) = py.detach(|| cfg.fit(&ds)).map_err(value_error)?;
    Ok(PyModel {
        inner: AnyModel::Classical(m),
    })
}

/// The extension module.
#[pymodule]
fn _hogsvm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(hog, m)?)?;
    m.add_function(wrap_pyfunction!(hog_batch, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(train_classical, m)?)?;
    m.add_class::<PyModel>()?;
    Ok(())
}
