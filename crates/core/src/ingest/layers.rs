//! Step 2 of the pipeline: the layer images of a load, each either cached under `layers/` or
//! converted now from its blob into the staging folder.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;

use super::{IngestOptions, Staged};
use crate::cancel::CancelReader;
use crate::erofs::LayerImage;
use crate::error::{Error, Result};
use crate::layer::{ConvertOptions, convert_layer_from};
use crate::oci::Digest;
use crate::progress::{LayerEvent, ProgressEvent, ProgressReader, emit};
use crate::source::{ImageSource, LayerSource};
use crate::store::{Root, StagingDir};

/// The layer images of a load, each either already under `layers/` or converted into the
/// staging folder.
#[derive(Debug, Default)]
pub(crate) struct PreparedLayers<'r> {
    /// Each layer's image size, by `diff_id`.
    pub sizes: HashMap<Digest, u64>,
    /// The content hash of each image converted now, by `diff_id` (a cached one has its
    /// recorded hash already).
    pub hashes: HashMap<Digest, String>,
    /// Where each layer's image can be read now, by `diff_id`.
    readable: HashMap<Digest, PathBuf>,
    /// The converted images, to publish.
    pub staged: Vec<Staged<'r>>,
}

impl PreparedLayers<'_> {
    /// The images of `diff_ids` (bottom to top) at the paths they can be read from now.
    pub(crate) fn images(&self, diff_ids: &[Digest]) -> Result<Vec<LayerImage>> {
        diff_ids
            .iter()
            .map(|d| {
                let path = self.readable.get(d).ok_or_else(|| {
                    Error::internal(format!("layer {d} was not prepared with its image"))
                })?;
                Ok(LayerImage {
                    path: path.clone(),
                    diff_id: d.clone(),
                })
            })
            .collect()
    }
}

/// A layer the load converts, with the position it has in the first image naming it (for
/// errors).
struct Needed<'a> {
    layer: &'a Arc<dyn LayerSource>,
    position: usize,
}

/// Ensures every layer of `images` has an EROFS image: an existing one under `layers/`
/// (measured beneath its handle; a symlink or a folder there is
/// [`Error::CorruptCacheEntry`]), whose blob is then never opened, or one converted now from
/// its blob into `staging`, every byte written charged to the budget ([`Error::LimitExceeded`]
/// when it would pass). Nothing is published. When several layers fail, the error of the first
/// (in image order, bottom to top) is reported.
///
/// The caller holds the artifact locks of every `diff_id` (see [`Root::lock_artifacts`]) and
/// the GC lock (shared) until the index names the layers or the load gave up.
pub(crate) fn prepare_layers<'r>(
    root: &'r Root,
    staging: &StagingDir,
    images: &[ImageSource],
    options: &IngestOptions,
) -> Result<PreparedLayers<'r>> {
    let mut prepared = PreparedLayers::default();
    let mut seen = HashSet::new();
    let mut needed = Vec::new();
    for image in images {
        for (position, layer) in image.layers.iter().enumerate() {
            let diff_id = layer.diff_id();
            if !seen.insert(diff_id.clone()) {
                continue;
            }
            match root.layer(diff_id).file_size()? {
                Some(size) => {
                    emit(
                        options.progress.as_ref(),
                        ProgressEvent::LayerCached(LayerEvent::new(
                            position,
                            layer.descriptor(),
                            diff_id,
                        )),
                    );
                    prepared.sizes.insert(diff_id.clone(), size);
                    prepared
                        .readable
                        .insert(diff_id.clone(), root.layout().layer(diff_id));
                }
                None => needed.push(Needed { layer, position }),
            }
        }
    }
    for n in &needed {
        n.layer.want();
    }
    // Layers read in place convert several at once; a stream's, one at a time in load order.
    type Indexed<'n, 'a> = Vec<(usize, &'n Needed<'a>)>;
    let (stream, in_place): (Indexed, Indexed) = needed
        .iter()
        .enumerate()
        .partition(|(_, n)| n.layer.sequence().is_some());
    let mut results: Vec<(usize, Result<Converted>)> = in_place
        .par_iter()
        .map(|(i, n)| (*i, convert(staging, n, options)))
        .collect();
    let in_place_failed = results.iter().any(|(_, r)| r.is_err());
    for (i, n) in stream.iter().filter(|_| !in_place_failed) {
        let result = convert(staging, n, options);
        let failed = result.is_err();
        results.push((*i, result));
        if failed {
            break;
        }
    }
    results.sort_by_key(|(i, _)| *i);
    for (i, result) in results {
        let (staged, size, hash) = result?;
        let diff_id = needed[i].layer.diff_id().clone();
        prepared.staged.push(Staged {
            from: staged.clone(),
            to: root.layer(&diff_id),
            synced: true,
        });
        prepared.sizes.insert(diff_id.clone(), size);
        prepared.hashes.insert(diff_id.clone(), hash);
        prepared.readable.insert(diff_id, staged);
    }
    Ok(prepared)
}

/// A layer image converted into the staging folder: its path there, size and content hash.
type Converted = (PathBuf, u64, String);

/// Converts one layer into the staging folder.
fn convert(staging: &StagingDir, n: &Needed<'_>, options: &IngestOptions) -> Result<Converted> {
    let layer = n.layer;
    let (descriptor, diff_id) = (layer.descriptor(), layer.diff_id());
    let dest = staging
        .path()
        .join(format!("layer-{}.erofs", diff_id.hex()));
    let blob = layer.open()?;
    let event = LayerEvent::new(n.position, descriptor, diff_id);
    let reader: Box<dyn std::io::Read + Send + '_> = match &options.progress {
        Some(sink) => Box::new(ProgressReader::new(
            blob.reader,
            sink.clone(),
            event.clone(),
        )),
        None => blob.reader,
    };
    let reader = CancelReader::new(reader, options.cancel.clone());
    let convert_options = ConvertOptions {
        blob_digest: Some(descriptor.digest.clone()),
        diff_id: Some(diff_id.clone()),
    };
    let converted =
        convert_layer_from(reader, &blob.path, &dest, &convert_options, &options.budget)
            .map_err(|e| name_layer(e, n.position))?;
    if converted.blob_size != descriptor.size {
        return Err(Error::invalid_archive(format!(
            "layer {} blob is {} bytes but its descriptor says {}",
            n.position, converted.blob_size, descriptor.size
        )));
    }
    emit(
        options.progress.as_ref(),
        ProgressEvent::LayerVerified(event.clone()),
    );
    emit(
        options.progress.as_ref(),
        ProgressEvent::LayerConverted {
            layer: event,
            erofs_bytes: converted.erofs_size,
        },
    );
    Ok((dest, converted.erofs_size, converted.erofs_hash))
}

/// Names the layer a digest mismatch is about (`layer 1 blob`, `layer 1 diff_id`).
fn name_layer(e: Error, position: usize) -> Error {
    match e {
        Error::DigestMismatch {
            what,
            expected,
            actual,
        } => Error::DigestMismatch {
            what: match what.strip_prefix("layer ") {
                Some(rest) => format!("layer {position} {rest}"),
                None => what,
            },
            expected,
            actual,
        },
        other => other,
    }
}
