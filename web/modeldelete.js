// modeldelete.js — the "Delete this model" button on the page of a model
// imported through the page (model.uploaded; demo and command-line models
// cannot be deleted and get no button). It asks first, in the page, then
// sends DELETE /api/models/{id} and goes back to the home page, which says
// the model is gone. Deleting is allowed while the analysis runs.

import { api } from './api.js';
import { el, fill, errorBox, progress } from './ui.js';

/** Adds the button (and the question it asks) at the end of `container`. */
export function initDelete(model, container) {
  if (!model || !model.uploaded || !container) return;
  const name = model.title || model.id;
  const box = el('div', { class: 'model-actions', id: 'model-actions' });

  const start = () => {
    const button = el('button', { type: 'button', class: 'danger-button', id: 'delete-model' }, 'Delete this model');
    button.addEventListener('click', ask);
    fill(box, el('p', { class: 'small muted' }, 'You imported this model: you can delete it from this server.'), button);
    return button;
  };

  const ask = () => {
    const yes = el('button', { type: 'button', class: 'danger-button', id: 'delete-confirm' }, 'Delete it');
    const no = el('button', { type: 'button', class: 'small-button', id: 'delete-cancel' }, 'Keep it');
    yes.addEventListener('click', remove);
    no.addEventListener('click', () => start().focus());
    fill(box, el('p', { class: 'delete-question', role: 'alert' },
      `Delete “${name}”? Its page and its analysis go with it, and this cannot be undone.`),
    el('div', { class: 'delete-buttons' }, yes, no));
    no.focus();
  };

  const remove = async () => {
    fill(box, progress(`Deleting “${name}”…`));
    try {
      await api.deleteModel(model.id);
    } catch (err) {
      const again = start();
      box.prepend(errorBox(err, 'Could not delete this model'));
      again.focus();
      return;
    }
    location.assign(`/?deleted=${encodeURIComponent(name)}`);
  };

  start();
  container.append(box);
}
