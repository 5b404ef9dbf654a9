// uploadcheck.js — what the upload accepts, checked before anything is sent,
// and the API's upload errors turned into sentences for a person.
//
// The server reads JPEG and PNG only, and refuses a body over its
// --max-upload-mb (10 MB, i.e. 10 × 2^20 bytes, by default), which GET
// /api/health reports as max_upload_bytes; the default is assumed until it
// has answered. Checking here saves the
// reader a long upload that would be refused, and names the problem in
// their terms; the server's own sentence stays available as the detail.
// Once answered, an image far smaller than what the model looks at is said
// to be (smallImageText).
// Pure (no DOM), tested under Node.

/** The body limit of a server started without --max-upload-mb (used until /api/health answers). */
export const DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024;

/** The types the picker offers (its `accept`) and the check lets through. */
export const UPLOAD_ACCEPT = 'image/jpeg,image/png,.jpg,.jpeg,.png';

const OK_TYPES = new Set(['image/jpeg', 'image/pjpeg', 'image/png']);
const OK_EXT = /\.(jpe?g|png)$/i;

// Names a person knows for what they tried to send.
const TYPE_NAMES = {
  'image/webp': 'a WebP image', 'image/gif': 'a GIF image', 'image/heic': 'a HEIC photo',
  'image/heif': 'a HEIF photo', 'image/avif': 'an AVIF image', 'image/bmp': 'a BMP image',
  'image/tiff': 'a TIFF image', 'image/svg+xml': 'an SVG drawing', 'application/pdf': 'a PDF document',
  'text/plain': 'a text file',
};
const EXT_TYPES = {
  webp: 'image/webp', gif: 'image/gif', heic: 'image/heic', heif: 'image/heif', avif: 'image/avif',
  bmp: 'image/bmp', tif: 'image/tiff', tiff: 'image/tiff', svg: 'image/svg+xml', pdf: 'application/pdf',
  txt: 'text/plain',
};

/** "28.6 MB", "850 kB", "12 bytes" (1 MB = 2^20 bytes, as the server counts). */
export function formatBytes(n) {
  if (!(n >= 0)) return '';
  if (n >= 1024 * 1024) {
    const mb = n / (1024 * 1024);
    return `${mb >= 10 || Number.isInteger(mb) ? Math.round(mb) : mb.toFixed(1)}\u00a0MB`;
  }
  if (n >= 1024) return `${Math.round(n / 1024)}\u00a0kB`;
  return `${n}\u00a0bytes`;
}

function typeName(file) {
  const ext = (/\.([a-z0-9]+)$/i.exec(file.name || '') || [])[1];
  const type = file.type || (ext ? EXT_TYPES[ext.toLowerCase()] : '') || '';
  if (TYPE_NAMES[type]) return TYPE_NAMES[type];
  if (type.startsWith('image/')) return `a ${type.slice(6).toUpperCase()} image`;
  if (type.startsWith('video/')) return 'a video';
  if (type.startsWith('audio/')) return 'a sound file';
  return type ? `a file of type ${type}` : null;
}

/** What to do about a file too big; `input` is the model's {width, height}. */
function tooBigHelp(input) {
  const at = input && input.width && input.height ? `at ${input.width}\u00a0×\u00a0${input.height} pixels` : 'much smaller';
  return `Save a smaller copy and try again: the model sees the photo ${at}, so a copy 1000 pixels wide loses nothing.`;
}

/**
 * Checks a File-like {name, size, type} before sending it. Returns null when
 * it may be sent, else {code, title, text} saying what is wrong and what to
 * do (`input`: the model's input size, for the advice). A file of unknown type with no telling extension is let through (the
 * server reads its bytes and decides).
 */
export function checkUpload(file, { limit = DEFAULT_UPLOAD_LIMIT, input = null } = {}) {
  const name = file.name || 'This file';
  if (file.size === 0) {
    return { code: 'empty', title: 'This file is empty', text: `${name} holds no data. Choose a JPEG or PNG photo.` };
  }
  const typeOk = OK_TYPES.has(file.type) || (!file.type && OK_EXT.test(file.name || ''));
  if (!typeOk) {
    const what = typeName(file);
    if (what) {
      return {
        code: 'type', title: 'strata reads JPEG and PNG images only',
        text: `${name} is ${what}. Save it as JPEG or PNG (most image viewers can) and try again.`,
      };
    }
  }
  if (typeof file.size === 'number' && file.size > limit) {
    return {
      code: 'size', title: 'This file is too big',
      text: `${name} is ${formatBytes(file.size)}; strata takes images up to ${formatBytes(limit)}. ${tooBigHelp(input)}`,
    };
  }
  return null;
}

/**
 * A failed upload (an ApiError: {code, status, message}) as {title, text}
 * for a person; the caller shows err.message, the server's own sentence, as
 * the detail.
 */
export function uploadErrorText(err, { limit = DEFAULT_UPLOAD_LIMIT, input = null } = {}) {
  const code = (err && err.code) || '';
  switch (code) {
    case 'unsupported_media_type':
    case 'bad_image':
      return { title: 'This file could not be read as a photo',
        text: 'strata reads JPEG and PNG images only, and this file is not one, or is damaged. ' +
          'Open it and save it again as JPEG or PNG, or try another photo.' };
    case 'image_too_large':
      return { title: 'This image has too many pixels',
        text: 'strata reads images up to 8192 pixels a side and 40 megapixels. Save a smaller copy and try again.' };
    case 'payload_too_large':
      return { title: 'This file is too big', text: `strata takes images up to ${formatBytes(limit)}. ${tooBigHelp(input)}` };
    case 'bad_input':
      return { title: 'The upload did not arrive whole', text: 'Try again; if it keeps failing, reload the page.' };
    case 'busy':
    case 'timeout':
      return { title: 'The server is busy', text: 'It is working on other requests. Wait a few seconds and try again.' };
    case 'cancelled':
      return { title: 'The upload was cut off', text: 'The connection closed before the answer came. Try again.' };
    case 'analysing':
      return { title: 'This model is still being analysed',
        text: 'Your image can be placed once the graphs above have appeared. Try again then.' };
    case 'analysis_failed':
      return { title: 'This model cannot take images',
        text: 'Its analysis failed (the message at the top of the page says why).' };
    case 'network':
      return { title: 'Could not reach the strata server',
        text: 'Check that `strata serve` is still running, then try again.' };
    case 'shutting_down':
      return { title: 'The server is shutting down', text: 'Try again once it has been restarted.' };
    case 'out_of_memory':
      return { title: 'The server ran out of memory', text: 'Try a smaller image, or try again later.' };
    default:
      return { title: 'No answer for this image', text: 'Something went wrong on the way. Try again, or try another photo.' };
  }
}

/**
 * A sentence for an answered image far smaller than what the model looks
 * at: under half the model's input on either side, so that the model saw it
 * enlarged more than twice and its answer says little. `image` is the
 * predict reply's {width, height}, `input` the model's {width, height}.
 * null when the image is big enough or a size is unknown.
 */
export function smallImageText(image, input) {
  const ok = (s) => s && s.width > 0 && s.height > 0;
  if (!ok(image) || !ok(input)) return null;
  const scale = Math.max(input.width / image.width, input.height / image.height);
  if (scale <= 2) return null;
  const size = (s) => `${s.width}\u00a0×\u00a0${s.height} pixel${s.width * s.height === 1 ? '' : 's'}`;
  return `This image is only ${size(image)}, and the model looks at ${size(input)}: it saw your image enlarged ` +
    `${Math.round(scale)} times, with ${scale >= 8 ? 'next to nothing' : 'little'} left to recognise. ` +
    'Its answer says little about what the photo shows.';
}
