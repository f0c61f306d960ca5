import sharp from 'sharp';
import { decodeImage } from '../../training-container/src/preprocess.ts';
import type { Heatmap } from '../../training-container/src/serve/contract.ts';

/**
 * A prediction's Grad-CAM heatmap blended over the image it explains, as a PNG at the image's own
 * size (EXIF rotation applied). The heatmap covers the model's input frame (`heatmap.frame`: the
 * whole image, the head crop, or the padded square around it), so it is stretched onto that
 * region; pixels outside the frame (cropped away by the model's preprocessing) are left as they are.
 */
export async function overlayHeatmap(
  imageBytes: Uint8Array,
  heatmap: Heatmap,
  { opacity = 0.45 }: { opacity?: number } = {},
): Promise<Buffer> {
  // The decode the model's preprocessing starts from, so the frame lines up with these pixels.
  const { data: image, width, height } = await decodeImage(imageBytes);
  const frame = heatmap.frame ?? { left: 0, top: 0, width, height };
  const fw = Math.max(1, Math.round(frame.width));
  const fh = Math.max(1, Math.round(frame.height));
  const heat = await sharp(Buffer.from(heatmap.png, 'base64'))
    .removeAlpha()
    .resize(fw, fh, { fit: 'fill', kernel: 'cubic' })
    .raw()
    .toBuffer();
  const out = Buffer.from(image);
  const left = Math.round(frame.left);
  const top = Math.round(frame.top);
  for (let y = Math.max(0, top); y < Math.min(height, top + fh); y++) {
    for (let x = Math.max(0, left); x < Math.min(width, left + fw); x++) {
      const i = (y * width + x) * 3;
      const h = ((y - top) * fw + (x - left)) * 3;
      for (let c = 0; c < 3; c++)
        out[i + c] = Math.round((1 - opacity) * image[i + c] + opacity * heat[h + c]);
    }
  }
  return sharp(out, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}
